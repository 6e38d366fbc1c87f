package daemon

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// How pipecached's settings are layered: the command line wins over the environment
// (PIPECACHE_<FLAG>), which wins over the -config file, which wins over the defaults.

// noEnv are the flags no environment variable sets: what the process does (-version; -h is no
// flag of the set) and where its configuration is (-config) are the command line's alone, so
// that a stray PIPECACHE_VERSION in a service's environment cannot keep it from serving.
var noEnv = map[string]bool{"version": true, "config": true}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// parseLayers parses args into fs, then the environment for the flags not on the command line,
// then the -config file for the flags set by neither. It returns the flags the command line or
// the environment set (fixed: a reload of the file leaves them as they are).
func parseLayers(fs *flag.FlagSet, args []string) (fixed map[string]bool, err error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fixed = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fixed[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || fixed[f.Name] || noEnv[f.Name] {
			return
		}
		v := os.Getenv(envName(f.Name))
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("$%s: %w", envName(f.Name), serr)
			return
		}
		fixed[f.Name] = true
	})
	if err != nil {
		return nil, err
	}
	if c := fs.Lookup("config"); c != nil && c.Value.String() != "" {
		if err := readConfigFile(c.Value.String(), fs, fixed); err != nil {
			return nil, err
		}
	}
	return fixed, nil
}
