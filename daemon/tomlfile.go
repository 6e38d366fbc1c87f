package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The -config file: TOML whose top-level keys are the flags' names and whose values are what the
// flags take, typed (BurntSushi/toml reads it). An error names the file, the line, the key, what
// the key takes and what it got.

// errConfigValue is a -config file value that no flag could take.
var errConfigValue = errors.New("config file: not a flag value")

// listFlags take a list of strings in the file, joined with commas as the flag takes them.
var listFlags = map[string]bool{"auth-tokens": true}

// readConfigFile sets the flags the file at path names, except those in skip.
func readConfigFile(path string, fs *flag.FlagSet, skip map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	var m map[string]any
	md, err := toml.Decode(string(b), &m)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	lines := keyLines(b)
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table: the table itself is refused below
		}
		key := k[0]
		at := fmt.Sprintf("config file %s, line %d: %s", path, lines[key], key)
		if _, table := m[key].(map[string]any); table {
			return fmt.Errorf("%s: %w: a table; flags are top-level keys", at, errConfigValue)
		}
		f := fs.Lookup(key)
		if f == nil {
			return fmt.Errorf("%s: %w: no flag -%s (pipecached -h lists them)", at, errConfigValue, key)
		}
		if skip[key] {
			continue
		}
		text, err := flagText(f, m[key])
		if err == nil {
			if err = fs.Set(key, text); err != nil {
				err = setError(f, text, err)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	return nil
}

// keyLines returns the line of each top-level key of a TOML file (and of each table's header),
// for error messages.
func keyLines(b []byte) map[string]int {
	lines := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	inTable := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "["):
			name := strings.Trim(line, "[] \t")
			if _, ok := lines[name]; !ok && !inTable {
				lines[name] = n
			}
			inTable = true
		case inTable || line == "" || strings.HasPrefix(line, "#"):
		default:
			if key, _, ok := strings.Cut(line, "="); ok {
				key = strings.Trim(strings.TrimSpace(key), `"'`)
				if _, seen := lines[key]; !seen {
					lines[key] = n
				}
			}
		}
	}
	return lines
}

// flagText turns a TOML value into the text flag f takes, if it is of a type f takes.
func flagText(f *flag.Flag, v any) (string, error) {
	k := kindOf(f)
	switch v := v.(type) {
	case string:
		return v, nil // the flag parses it; a failure says what it wants
	case int64:
		if k == kindInt || k == kindSize {
			return strconv.FormatInt(v, 10), nil
		}
		if k == kindDuration {
			return "", fmt.Errorf("want %s, got the integer %d (a duration needs a unit: \"%ds\")", describeKind(f), v, v)
		}
	case bool:
		if k == kindBool {
			return strconv.FormatBool(v), nil
		}
	case []any:
		if !listFlags[f.Name] {
			break
		}
		parts := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("want %s: a list may hold only strings, not %s", describeKind(f), tomlType(e))
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want %s, got %s", describeKind(f), tomlType(v))
}

// tomlType names a decoded TOML value's type for an error message.
func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table (flags are top-level keys)"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("a %T", v)
}

// kind is the type of value a flag takes.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindDuration
	kindSize
)

func kindOf(f *flag.Flag) kind {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return kindBool
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return kindString
	}
	switch g.Get().(type) {
	case time.Duration:
		return kindDuration
	case size:
		return kindSize
	case int, int64, uint, uint64:
		return kindInt
	}
	return kindString
}

// describeKind says what flag f takes, as a config file writes it.
func describeKind(f *flag.Flag) string {
	switch kindOf(f) {
	case kindBool:
		return "a boolean (true or false)"
	case kindInt:
		return "an integer"
	case kindDuration:
		return `a duration in quotes ("2s", "1500ms")`
	case kindSize:
		return `a size: bytes (an integer), or in quotes with a unit ("64MiB")`
	}
	if listFlags[f.Name] {
		return "a string or a list of strings"
	}
	return "a string in quotes"
}

// setError says why flag f did not take text: what it wants, what it got, and the flag's own
// reason unless that is the flag package's bare "parse error".
func setError(f *flag.Flag, text string, err error) error {
	detail := strings.TrimPrefix(err.Error(), fmt.Sprintf("invalid value %q for flag -%s: ", text, f.Name))
	if detail == "parse error" {
		return fmt.Errorf("want %s, got %q", describeKind(f), text)
	}
	return fmt.Errorf("want %s, got %q: %s", describeKind(f), text, detail)
}
