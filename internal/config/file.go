package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// applyFile decodes the YAML file at path over c, strictly: unknown and
// duplicate keys are problems. It records in sources where each key was set.
// Problems are returned so they can be reported with the rest; only an
// unreadable or unparsable file is an error on its own.
func applyFile(c *Config, path string, sources map[string]string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}

	// yaml.v3 reports type errors by line only; index the top-level keys by
	// line first so each problem can name its key.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	keyAt := map[int]*yaml.Node{}      // line → key node
	valueOf := map[string]*yaml.Node{} // key → value node
	keyLine := map[string]int{}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode && m.Tag != "!!null" {
			return []string{fmt.Sprintf("%s:%d: want a mapping of settings (domain: example.org, …)", path, m.Line)}, nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if _, dup := keyLine[k.Value]; dup {
				continue // yaml.v3 reports duplicates itself
			}
			keyLine[k.Value] = k.Line
			valueOf[k.Value] = v
			keyAt[k.Line] = k
			if _, taken := keyAt[v.Line]; !taken {
				keyAt[v.Line] = k
			}
		}
	}

	var problems []string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(c)
	var typeErr *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil // empty file, or only comments: nothing set
	case errors.As(err, &typeErr):
		for _, msg := range typeErr.Errors {
			problems = append(problems, describeYAMLError(path, msg, keyAt, valueOf))
		}
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		problems = append(problems, path+": only one YAML document is allowed")
	}

	if c.Config != "" {
		// A file naming another file would need rules for cycles and
		// precedence among files; one level is enough.
		problems = append(problems, fmt.Sprintf("%s:%d: config: cannot be set inside a config file", path, keyLine["config"]))
		c.Config = ""
	}
	for _, s := range settings {
		if line, ok := keyLine[s.name]; ok {
			sources[s.name] = fmt.Sprintf("%s:%d", path, line)
		}
	}
	return problems, nil
}

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknown   = regexp.MustCompile(`^field (.+) not found in type `)
	yamlUnmarshal = regexp.MustCompile(`^cannot unmarshal `)
)

// describeYAMLError turns one of yaml.v3's "line N: …" messages into
// "FILE:N: key: problem", with the same wording as a bad flag or env value.
func describeYAMLError(path, msg string, keyAt map[int]*yaml.Node, valueOf map[string]*yaml.Node) string {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return path + ": " + msg
	}
	line, _ := strconv.Atoi(m[1])
	where, what := fmt.Sprintf("%s:%d", path, line), m[2]
	if u := yamlUnknown.FindStringSubmatch(what); u != nil {
		return fmt.Sprintf("%s: unknown key %q", where, u[1])
	}
	if yamlUnmarshal.MatchString(what) {
		if k := keyAt[line]; k != nil {
			v := valueOf[k.Value]
			if s := lookup(k.Value); s != nil && v != nil && v.Kind == yaml.ScalarNode {
				if err := s.value(Default()).Set(v.Value); err != nil {
					return fmt.Sprintf("%s: %s: invalid value %q: %v", where, k.Value, v.Value, err)
				}
			}
			return fmt.Sprintf("%s: %s: %s", where, k.Value, what)
		}
	}
	return where + ": " + what
}

func lookup(name string) *setting {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}
