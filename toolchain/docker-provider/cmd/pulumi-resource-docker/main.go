// pulumi-resource-docker: the Pulumi resource plugin (gRPC server the engine starts).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	docker "github.com/terraform-providers/terraform-provider-docker/cloudservice"
)

// The plugin reports this version to the engine; the SDK asks for the version it was published
// with, so the build sets it to the PyPI SDK's: -ldflags "-X main.version=5.2.0".
var version = "0.0.0-dev"

// schema.json is generated at build time by cmd/pulumi-tfgen-docker (it is not committed); the
// bridge serves it from GetSchema and uses it to type-check provider configuration.
//
//go:embed schema.json
var schema []byte

func main() {
	tfbridge.Main("docker", version, docker.Provider(version), schema)
}
