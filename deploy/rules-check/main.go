// rules-check validates Prometheus rule files as `promtool check rules` does (the same
// rulefmt.ParseFile with a PromQL parser: YAML shape, every expression, labels and annotation
// templates) and prints, as JSON, each rule with the metric names its expression selects, for
// the tests to compare with what the services export. promtool itself is not in any registry
// this project installs from; its rule checking is in the Prometheus module, which is.
//
//	go run . deploy/prometheus/alerts.yml
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type rule struct {
	Group   string            `json:"group"`
	Alert   string            `json:"alert,omitempty"`
	Record  string            `json:"record,omitempty"`
	Expr    string            `json:"expr"`
	For     string            `json:"for,omitempty"`
	Labels  map[string]string `json:"labels"`
	Metrics []string          `json:"metrics"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rules-check FILE...")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.DiscardHandler)
	var rules []rule
	failed := false
	for _, file := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, logger)
		for _, err := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			failed = true
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			seen := map[string]bool{}
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				if seen[name] {
					fmt.Fprintf(os.Stderr, "%s: group %q: rule %q twice\n", file, g.Name, name)
					failed = true
				}
				seen[name] = true
				expr, err := p.ParseExpr(r.Expr)
				if err != nil { // rulefmt has reported it
					continue
				}
				rules = append(rules, rule{
					Group:   g.Name,
					Alert:   r.Alert,
					Record:  r.Record,
					Expr:    r.Expr,
					For:     r.For.String(),
					Labels:  r.Labels,
					Metrics: metricNames(expr),
				})
			}
		}
	}
	if failed {
		os.Exit(1)
	}
	out, err := json.MarshalIndent(rules, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

// metricNames: the metric name of every selector in the expression, sorted, once each.
func metricNames(expr parser.Expr) []string {
	names := map[string]bool{}
	for _, matchers := range parser.ExtractSelectors(expr) {
		for _, m := range matchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				names[m.Value] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	return sorted
}
