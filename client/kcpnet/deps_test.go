//go:build linux

package kcpnet

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesStaySmall: the SDK links this package, so it must not bring the daemon's
// packages (the server's transport, the stages, the nameservice) or etcd's client with it; only
// the tests may use the server.
func TestDependenciesStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs `go list`: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	forbidden := []string{"go.etcd.io/", "google.golang.org/", "github.com/pipecache/pipecache/stages",
		"github.com/pipecache/pipecache/nameservice", "github.com/pipecache/pipecache/client"}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) && dep != "github.com/pipecache/pipecache/client/kcpnet" {
				t.Errorf("package kcpnet depends on %s (forbidden: %s*)", dep, f)
			}
		}
		if dep == "github.com/pipecache/pipecache/transport" {
			t.Errorf("package kcpnet depends on the server's transport")
		}
	}
}
