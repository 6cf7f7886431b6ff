// Command compose-check loads a Compose file with compose-go, the library behind
// `docker compose`, so the file is validated by a real Compose implementation (schema,
// interpolation, references, and the merge of several files: a base and its override) without a
// Docker engine. It prints each service's name, image, whether it has a healthcheck, its
// depends_on conditions, published ports, volumes, secrets, environment, logging driver and
// options, and memory and CPU limits as JSON.
//
// For a rehearsal without Docker (tests/deploy/test_rehearsal.py) it also prints what a container
// would run: each service's entrypoint and command, its environment (env_file entries merged, as
// compose does), its healthcheck (test, interval, timeout, retries, start period in seconds), and
// with -secrets-dir D its secrets written to files under D, as target path (/run/secrets/<name>)
// -> file.
//
// Usage: go run ./deploy/compose-check [-env-file F] [-secrets-dir D] docker-compose.yml [override.yml ...]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type service struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Healthcheck bool              `json:"healthcheck"`
	DependsOn   map[string]string `json:"depends_on"`
	Published   []string          `json:"published_ports"`
	Volumes     []string          `json:"volumes"`
	Secrets     []string          `json:"secrets"`
	User        string            `json:"user"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Logging     string            `json:"logging_driver"`
	LogOptions  map[string]string `json:"logging_options"`
	MemLimit    int64             `json:"memory_limit_bytes"`
	CPUs        float32           `json:"cpus_limit"`
	Entrypoint  []string          `json:"entrypoint"`
	Check       *healthcheck      `json:"healthcheck_spec"`
	SecretFiles map[string]string `json:"secret_files"`
}

// healthcheck is a service's healthcheck as a rehearsal runs it (durations in seconds; compose's
// defaults where the file sets none).
type healthcheck struct {
	Test        []string `json:"test"`
	Interval    float64  `json:"interval_s"`
	Timeout     float64  `json:"timeout_s"`
	Retries     uint64   `json:"retries"`
	StartPeriod float64  `json:"start_period_s"`
}

func seconds(d *types.Duration, fallback time.Duration) float64 {
	if d == nil {
		return fallback.Seconds()
	}
	return time.Duration(*d).Seconds()
}

// secretContent is what compose mounts for a secret: its file, or the value of the variable
// it names (compose-go may have loaded it already).
func secretContent(project *types.Project, name string) ([]byte, error) {
	secret, ok := project.Secrets[name]
	if !ok {
		return nil, fmt.Errorf("service secret %q is not defined", name)
	}
	switch {
	case secret.Content != "":
		return []byte(secret.Content), nil
	case secret.Environment != "":
		value, ok := project.Environment[secret.Environment]
		if !ok {
			return nil, fmt.Errorf("secret %q: variable %s is not set", name, secret.Environment)
		}
		return []byte(value), nil
	case secret.File != "":
		return os.ReadFile(secret.File)
	}
	return nil, fmt.Errorf("secret %q has no file, environment or content", name)
}

type report struct {
	Name     string    `json:"name"`
	Services []service `json:"services"`
	Volumes  []string  `json:"volumes"`
	Secrets  []string  `json:"secrets"`
}

func main() {
	envFile := flag.String("env-file", "", "environment file to interpolate with")
	secretsDir := flag.String("secrets-dir", "", "write each service's secrets under this folder")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-env-file F] docker-compose.yml [override.yml ...]")
		os.Exit(2)
	}
	var files []string
	for _, arg := range flag.Args() {
		file, err := filepath.Abs(arg)
		if err != nil {
			fail(err)
		}
		files = append(files, file)
	}
	opts := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(filepath.Dir(files[0])), cli.WithName("apl-match")}
	if *envFile != "" {
		opts = append(opts, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	options, err := cli.NewProjectOptions(files, opts...)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out := report{Name: project.Name}
	for _, s := range project.Services {
		item := service{Name: s.Name, Image: s.Image, Healthcheck: s.HealthCheck != nil && !s.HealthCheck.Disable,
			DependsOn: map[string]string{}, User: s.User, Command: s.Command,
			Environment: map[string]string{}, LogOptions: map[string]string{},
			Entrypoint: s.Entrypoint, SecretFiles: map[string]string{}}
		if item.Healthcheck {
			h := s.HealthCheck
			retries := uint64(3)
			if h.Retries != nil {
				retries = *h.Retries
			}
			item.Check = &healthcheck{Test: h.Test, Interval: seconds(h.Interval, 30*time.Second),
				Timeout: seconds(h.Timeout, 30*time.Second), Retries: retries,
				StartPeriod: seconds(h.StartPeriod, 0)}
		}
		for name, value := range s.Environment {
			if value != nil {
				item.Environment[name] = *value
			}
		}
		if s.Logging != nil {
			item.Logging = s.Logging.Driver
			for k, v := range s.Logging.Options {
				item.LogOptions[k] = v
			}
		}
		if s.Deploy != nil && s.Deploy.Resources.Limits != nil {
			item.MemLimit = int64(s.Deploy.Resources.Limits.MemoryBytes)
			item.CPUs = float32(s.Deploy.Resources.Limits.NanoCPUs)
		}
		for name, dep := range s.DependsOn {
			item.DependsOn[name] = dep.Condition
		}
		for _, p := range s.Ports {
			if p.Published != "" {
				item.Published = append(item.Published, p.Published)
			}
		}
		for _, v := range s.Volumes {
			item.Volumes = append(item.Volumes, v.Type+":"+v.Source)
		}
		for _, sec := range s.Secrets {
			item.Secrets = append(item.Secrets, sec.Source)
			if *secretsDir == "" {
				continue
			}
			content, err := secretContent(project, sec.Source)
			if err != nil {
				fail(err)
			}
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !filepath.IsAbs(target) {
				target = "/run/secrets/" + target
			}
			file := filepath.Join(*secretsDir, s.Name, filepath.Base(target))
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				fail(err)
			}
			if err := os.WriteFile(file, content, 0o600); err != nil {
				fail(err)
			}
			item.SecretFiles[target] = file
		}
		out.Services = append(out.Services, item)
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Name < out.Services[j].Name })
	for name := range project.Volumes {
		out.Volumes = append(out.Volumes, name)
	}
	for name := range project.Secrets {
		out.Secrets = append(out.Secrets, name)
	}
	sort.Strings(out.Volumes)
	sort.Strings(out.Secrets)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
