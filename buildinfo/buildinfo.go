// Package buildinfo says which build of pipecache is running, from the information the Go
// toolchain embeds in every binary (runtime/debug.ReadBuildInfo): the module's version, the
// VCS revision and time it was built from, whether the work tree had local changes, and the Go
// version. Every binary's -version flag, the stats op and the pipecache_build_info metric use
// it, so they all say the same thing. Safe for concurrent use; it has no state.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info describes a build.
type Info struct {
	Version   string // the main module's version: a tag, a pseudo-version, or "(devel)"
	Revision  string // VCS commit, "" if unknown (e.g. go run, or built outside a repository)
	Time      string // VCS commit time (RFC 3339), "" if unknown
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string // the toolchain that built it
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)", GoVersion: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts an Info from the toolchain's build information.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// ShortRevision is the revision's first 12 characters.
func (i Info) ShortRevision() string {
	if len(i.Revision) > 12 {
		return i.Revision[:12]
	}
	return i.Revision
}

// String is one line, for -version and the stats op, such as
// "v1.2.0 (rev 3f2a1c9d8e7b, 2026-05-01T10:00:00Z, modified) go1.26.8".
func (i Info) String() string {
	var detail []string
	if i.Revision != "" {
		detail = append(detail, "rev "+i.ShortRevision())
	}
	if i.Time != "" {
		detail = append(detail, i.Time)
	}
	if i.Modified {
		detail = append(detail, "modified")
	}
	s := i.Version
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return fmt.Sprintf("%s %s", s, i.GoVersion)
}

// VersionLine is what a command-line tool's -version prints, such as "pipecachectl version
// v1.2.0, revision 3f2a1c9d8e7b4aaf+modified, committed 2026-05-01T10:00:00Z, go1.26.8
// linux/amd64": the whole revision (to check out), and the platform the binary is for.
func (i Info) VersionLine(program string) string {
	parts := []string{program + " version " + i.Version}
	if i.Revision != "" {
		rev := i.Revision
		if i.Modified {
			rev += "+modified"
		}
		parts = append(parts, "revision "+rev)
	}
	if i.Time != "" {
		parts = append(parts, "committed "+i.Time)
	}
	parts = append(parts, i.GoVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, ", ")
}
