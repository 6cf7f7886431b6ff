// Command compose-check loads a Compose file with compose-go, the library behind
// `docker compose`, so the file is validated by a real Compose implementation (schema,
// interpolation, references) without a Docker engine. It prints each service's name, whether it
// has a healthcheck, its depends_on conditions and its published ports as JSON.
//
// Usage: go run ./deploy/compose-check [-env-file F] docker-compose.yml
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
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-env-file F] docker-compose.yml")
		os.Exit(2)
	}
	file, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	opts := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithName("apl-match")}
	if *envFile != "" {
		opts = append(opts, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	options, err := cli.NewProjectOptions([]string{file}, opts...)
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
			DependsOn: map[string]string{}, User: s.User}
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
