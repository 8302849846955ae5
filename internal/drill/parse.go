package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rempart/rempart/scenarios"
)

// FieldError is one problem in a scenario, located by file, line and field.
type FieldError struct {
	File  string // where the scenario came from
	Line  int    // 1-based; 0 when unknown
	Field string // e.g. phases[2].rates.botnet; empty for syntax errors
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadScenario reads and validates a scenario file. Target names in the
// populations' mixes resolve in targets (DefaultTargets when nil).
func LoadScenario(path string, targets Targets) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return ParseScenario(path, data, targets)
}

// BuiltinScenario returns one of the scenarios shipped in scenarios/, by name
// without extension: "laposte-2025" or "quick".
func BuiltinScenario(name string, targets Targets) (*Scenario, error) {
	data, err := scenarios.FS.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no built-in scenario %q (have %s): %w", name, strings.Join(BuiltinScenarios(), ", "), err)
	}
	return ParseScenario("scenarios/"+name+".yaml", data, targets)
}

// BuiltinScenarios lists the names BuiltinScenario accepts.
func BuiltinScenarios() []string {
	entries, _ := scenarios.FS.ReadDir(".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	return names
}

// ParseScenario decodes and validates a scenario. Unknown fields, wrong types
// and invalid values are all reported, each as a *FieldError naming file, line
// and field, joined into one error.
func ParseScenario(file string, data []byte, targets Targets) (*Scenario, error) {
	if targets == nil {
		targets = DefaultTargets()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &FieldError{File: file, Msg: "empty scenario"}
	}
	root := doc.Content[0]

	var errs []*FieldError
	checkNode(root, reflect.TypeFor[Scenario](), nil, &errs)
	if len(errs) > 0 {
		return nil, joinFieldErrors(file, errs)
	}

	s := &Scenario{file: file, root: root, targets: targets}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		// checkNode should have caught it: merge keys and the like end here.
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &FieldError{File: file, Line: extra.Line, Msg: "more than one YAML document"}
	}
	for i := range s.SLOs {
		s.SLOs[i].line = lineOf(root, path{"slos", i})
	}
	if errs := s.validate(); len(errs) > 0 {
		return nil, joinFieldErrors(file, errs)
	}
	return s, nil
}

// path addresses a node: string keys and int indexes.
type path []any

func (p path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

func (p path) with(e any) path { return append(slices.Clip(p), e) }

// lineOf finds the line of the deepest node along p that exists, so a
// missing field is reported where its parent is written.
func lineOf(n *yaml.Node, p path) int {
	line := n.Line
	for _, e := range p {
		n = resolveAlias(n)
		var at, next *yaml.Node
		switch e := e.(type) {
		case int:
			if n.Kind == yaml.SequenceNode && e >= 0 && e < len(n.Content) {
				at, next = n.Content[e], n.Content[e]
			}
		case string:
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == e {
					at, next = n.Content[i], n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		line, n = at.Line, next
	}
	return line
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// checkNode walks a YAML node against the Go type it will decode into and
// reports unknown fields and values of the wrong type with their path. It is
// yaml.v3's KnownFields with the field's path in the message.
func checkNode(n *yaml.Node, t reflect.Type, p path, errs *[]*FieldError) {
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if t.Kind() == reflect.Pointer && !reflect.PointerTo(t).Implements(unmarshalerType) {
		t = t.Elem()
	}
	bad := func(line int, format string, args ...any) {
		*errs = append(*errs, &FieldError{Line: line, Field: p.String(), Msg: fmt.Sprintf(format, args...)})
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t == durationType || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			bad(n.Line, "want %s, got %s", kindName(t), valueText(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad(n.Line, "want a mapping of fields, got %s", valueText(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			if key.Value == "<<" {
				continue // merge keys: the decoder's KnownFields checks them
			}
			f, ok := fields[key.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for k := range fields {
					names = append(names, k)
				}
				sort.Strings(names)
				*errs = append(*errs, &FieldError{Line: key.Line, Field: p.with(key.Value).String(),
					Msg: "unknown field (known: " + strings.Join(names, ", ") + ")"})
				continue
			}
			checkNode(val, f.Type, p.with(key.Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad(n.Line, "want a list, got %s", valueText(n))
			return
		}
		for i, c := range n.Content {
			checkNode(c, t.Elem(), p.with(i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad(n.Line, "want a mapping, got %s", valueText(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			if key.Kind != yaml.ScalarNode {
				bad(key.Line, "want a name as key")
				continue
			}
			checkNode(n.Content[i+1], t.Elem(), p.with(key.Value), errs)
		}
	}
}

// yamlFields maps a struct's YAML keys to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField)
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 90s or 2h"
	case t == reflect.TypeFor[Names]():
		return "a name or a list of names"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func valueText(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "an alias"
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml.v3's errors ("yaml: line 3: ...", TypeError lists)
// into located FieldErrors.
func yamlError(file string, err error) error {
	var lines []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	var errs []*FieldError
	for _, l := range lines {
		fe := &FieldError{Msg: strings.TrimPrefix(l, "yaml: ")}
		if m := yamlLineRE.FindStringSubmatch(l); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
		}
		errs = append(errs, fe)
	}
	return joinFieldErrors(file, errs)
}

// joinFieldErrors stamps the file on each error and joins them in line order.
func joinFieldErrors(file string, errs []*FieldError) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	out := make([]error, len(errs))
	for i, e := range errs {
		e.File = file
		out[i] = e
	}
	return errors.Join(out...)
}
