// Command compose-check loads a Compose file with compose-go, the library behind
// `docker compose`, so the file is validated by a real Compose implementation (schema,
// interpolation, references, and the merge of several files: a base and its override) without a
// Docker engine. It prints each service's name, image, whether it has a healthcheck, its
// depends_on conditions, published ports, volumes, secrets, environment, logging driver and
// options, and memory and CPU limits as JSON.
//
// Usage: go run ./deploy/compose-check [-env-file F] docker-compose.yml [override.yml ...]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
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
}

type report struct {
	Name     string    `json:"name"`
	Services []service `json:"services"`
	Volumes  []string  `json:"volumes"`
	Secrets  []string  `json:"secrets"`
}

func main() {
	envFile := flag.String("env-file", "", "environment file to interpolate with")
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
			Environment: map[string]string{}, LogOptions: map[string]string{}}
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
