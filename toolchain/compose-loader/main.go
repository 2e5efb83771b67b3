// compose-loader loads a Compose project the way `docker compose config` does, with compose-go (the
// library Docker Compose itself is built on), and prints the normalised model as JSON for
// components/compose.py. Built by toolchain/build.sh.
//
// stdin:  {"workingDir": "/abs", "files": ["/abs/compose.yaml"], "environment": {}, "profiles": [], "projectName": ""}
// stdout: {"project": {...}} and exit 0, or {"error": "..."} and exit 2.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/types"
)

type request struct {
	WorkingDir  string        `json:"workingDir"`
	Files       []string      `json:"files"`
	Environment types.Mapping `json:"environment"`
	Profiles    []string      `json:"profiles"`
	ProjectName string        `json:"projectName"`
}

func main() {
	out, err := run()
	if err != nil {
		out, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	os.Stdout.Write(append(out, '\n'))
	if err != nil {
		os.Exit(2)
	}
}

func run() (out []byte, err error) {
	// A panic in compose-go is one more load error for the caller, never a Go trace.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compose-go failed: %v", r)
		}
	}()
	var req request
	decoder := json.NewDecoder(os.Stdin)
	decoder.DisallowUnknownFields() // a misspelt key fails loudly instead of being ignored
	if err = decoder.Decode(&req); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	// Relative paths would depend on the caller's current directory.
	for _, path := range append([]string{req.WorkingDir}, req.Files...) {
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("bad request: %q is not an absolute path", path)
		}
	}

	// Stacks must be reproducible: the only variables are the project's .env overlaid by the
	// request's environment, which plays the shell's part (compose-go's .env never overrides it).
	// The OS environment is never passed in (no cli.WithOsEnv); the one variable compose-go would
	// still read from it, the switch that skips the default .env, is dropped.
	os.Unsetenv(consts.ComposeDisableDefaultEnvFile)
	options, err := cli.NewProjectOptions(req.Files,
		cli.WithWorkingDirectory(req.WorkingDir),
		cli.WithEnv(req.Environment.Values()),
		cli.WithEnvFiles(), // no explicit file: workingDir/.env, when it exists
		cli.WithDotEnv,
		// As `docker compose`: COMPOSE_PROFILES (from .env or the request) when no profile is given.
		cli.WithDefaultProfiles(req.Profiles...),
		cli.WithName(req.ProjectName), // else `name:`, COMPOSE_PROJECT_NAME or workingDir's name
		// compose-go's defaults, spelt out: this is what callers rely on.
		cli.WithInterpolation(true), cli.WithNormalization(true), cli.WithResolvedPaths(true), cli.WithConsistency(true),
		// env_file entries are loaded into each service's `environment`, then dropped from the
		// output, as `docker compose config` shows them: `environment` is the whole story.
		cli.WithDiscardEnvFile,
	)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	return marshal(project)
}

// marshal returns {"project": json.Marshal(project)} with the x- extensions put back at the top
// level and in each service: compose-go keeps them in maps tagged `json:"-"` (its own
// Project.MarshalJSON restores only the top-level ones and omits models).
func marshal(project *types.Project) ([]byte, error) {
	top, err := withExtensions(project, project.Extensions)
	if err != nil {
		return nil, err
	}
	services := map[string]any{}
	for name, service := range project.Services {
		if services[name], err = withExtensions(service, service.Extensions); err != nil {
			return nil, err
		}
	}
	top["services"] = services
	return json.Marshal(map[string]any{"project": top})
}

// withExtensions returns v as encoding/json marshals it, as a JSON object, plus the fields of ext.
func withExtensions(v any, ext types.Extensions) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	object := map[string]any{}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber() // numbers (byte sizes, ...) are written back exactly as marshalled
	if err := decoder.Decode(&object); err != nil {
		return nil, err
	}
	maps.Copy(object, ext)
	return object, nil
}
