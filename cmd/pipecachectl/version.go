package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionLine says which build this is, from the build information the Go toolchain embeds:
// the module version ("(devel)" for a build from a checkout), the VCS revision and its time,
// whether the tree had uncommitted changes, and the Go version.
func versionLine(program string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s version unknown (no build information), %s %s/%s", program, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return formatVersion(program, info)
}

// formatVersion is versionLine for the build information info.
func formatVersion(program string, info *debug.BuildInfo) string {
	parts := []string{program + " version " + info.Main.Version}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "+modified"
		}
		parts = append(parts, "revision "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	parts = append(parts, info.GoVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, ", ")
}
