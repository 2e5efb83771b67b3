// Package docker maps the Terraform Docker provider onto Pulumi tokens and names the way
// pulumi-docker does, so that the published SDKs (PyPI `pulumi-docker`) talk to this plugin unchanged.
package docker

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"

	// Allowed only because this module's path is below the upstream module's (see go.mod).
	tfdocker "github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

const (
	pkg = "docker"
	mod = "index" // every Docker resource lives in the root module: docker:index/<camelName>:<Name>
)

func resource(name string) *tfbridge.ResourceInfo {
	return &tfbridge.ResourceInfo{Tok: tfbridge.MakeResource(pkg, mod, name)}
}

func dataSource(name string) *tfbridge.DataSourceInfo {
	return &tfbridge.DataSourceInfo{Tok: tfbridge.MakeDataSource(pkg, mod, name)}
}

// Provider returns the bridge description of the provider at the given (Pulumi) version.
//
// Upstream serves an SDKv2 provider muxed with a plugin-framework one, but the framework half only
// adds resources the Pulumi SDK does not know (docker_compose, actions, two data sources) and the
// provider configuration is the SDKv2 one. So, like pulumi-docker, only the SDKv2 provider is bridged,
// which needs nothing but shimv2 (no pf/muxer, so the plugin-framework bridge is never compiled).
func Provider(version string) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:       shimv2.NewProvider(tfdocker.New(version)()),
		Name:    "docker",
		Version: version,
		// Used by tfgen only, with UpstreamRepoPath (cmd/pulumi-tfgen-docker), to read upstream docs.
		GitHubOrg:   "kreuzwerker",
		Description: "A Pulumi package for interacting with Docker in Pulumi programs",
		Keywords:    []string{"pulumi", "docker"},
		License:     "Apache-2.0",
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {Default: &tfbridge.DefaultInfo{
				Value:   "unix:///var/run/docker.sock",
				EnvVars: []string{"DOCKER_HOST"},
			}},
			// A list in Terraform, but named (and typed) as pulumi-docker does: `registryAuth`, never one item.
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok: tfbridge.MakeResource(pkg, mod, "Container"),
				// Container names are unique on a host: the old one must go before its replacement starts.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					"command":           {Name: "command"},          // one command (argv), not plural
					"networks_advanced": {Name: "networksAdvanced"}, // upstream name kept as is
				},
			},
			"docker_image": {
				Tok:    tfbridge.MakeResource(pkg, mod, "RemoteImage"),
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
			"docker_network":        resource("Network"),
			"docker_volume":         resource("Volume"),
			"docker_registry_image": resource("RegistryImage"),
			"docker_tag":            resource("Tag"),
			"docker_service":        resource("Service"),
			"docker_config":         resource("ServiceConfig"),
			"docker_secret":         resource("Secret"),
			"docker_plugin":         resource("Plugin"),
			"docker_buildx_builder": resource("BuildxBuilder"),
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_registry_image":           dataSource("getRegistryImage"),
			"docker_registry_image_manifests": dataSource("getRegistryImageManifests"),
			"docker_network":                  dataSource("getNetwork"),
			"docker_plugin":                   dataSource("getPlugin"),
			"docker_image":                    dataSource("getRemoteImage"),
			"docker_logs":                     dataSource("getLogs"),
		},
	}
	// Resources with a `name` get `<logical name>-<random suffix>` when the program gives none.
	info.SetAutonaming(255, "-")
	return info
}
