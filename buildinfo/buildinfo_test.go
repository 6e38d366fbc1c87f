package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"tagged clean build", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "3f2a1c9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"},
				{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"v1.2.0 (rev 3f2a1c9d8e7b, 2026-05-01T10:00:00Z) go1.26.8"},
		{"modified work tree", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel) (rev abc, modified) go1.26.8"},
		{"go run: no vcs, no version", debug.BuildInfo{GoVersion: "go1.26.8"}, "(devel) go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, FromBuildInfo(&tt.bi).String())
		})
	}
}

func TestReadNamesThisToolchain(t *testing.T) {
	info := Read()
	assert.Equal(t, runtime.Version(), info.GoVersion)
	assert.NotEmpty(t, info.Version)
}

func TestVersionLine(t *testing.T) {
	info := FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "4aaf281"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	assert.Equal(t, "pipecache-x version v1.2.3, revision 4aaf281+modified, committed 2026-12-01T10:00:00Z, go1.26.8 "+
		runtime.GOOS+"/"+runtime.GOARCH, info.VersionLine("pipecache-x"))
	info = FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}})
	assert.Equal(t, "pipecache-x version v1.2.3, go1.26.8 "+runtime.GOOS+"/"+runtime.GOARCH, info.VersionLine("pipecache-x"))
}
