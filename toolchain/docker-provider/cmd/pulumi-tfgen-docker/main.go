// pulumi-tfgen-docker: build-time only. `pulumi-tfgen-docker schema --out DIR` writes the Pulumi
// schema (schema.json) that pulumi-resource-docker embeds. Kept out of the plugin binary because
// the bridge's generator pulls in every language's code generator.
package main

import (
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	docker "github.com/terraform-providers/terraform-provider-docker/cloudservice"
)

var version = "0.0.0-dev" // set with -ldflags "-X main.version=..."

func main() {
	info := docker.Provider(version)
	// Where the upstream docs/ are (descriptions in the schema); the build script passes the
	// module's directory so tfgen does not try to locate (or download) the repository itself.
	info.UpstreamRepoPath = os.Getenv("DOCKER_PROVIDER_UPSTREAM_DIR")
	tfgen.Main("docker", version, info)
}
