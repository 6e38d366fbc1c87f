package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// The suite runs the daemon with the mapping of stages to loops that the machine's CPUs choose
// (-threads from sched_getaffinity: on 2 cores, two loops). TestEveryMapping runs the tests that
// exercise the pipeline again under each other mapping: this test binary again, with
// PIPECACHE_THREADS set, which pipecached reads as its -threads and testdaemon.Start gives the
// daemons it starts.
const threadsEnv = testdaemon.ThreadsEnv

// notPipeline are the tests whose subject is not the stages but what is around them (the
// cluster's membership and etcd's outages, the migration, a full disk, flags and files, start-up
// failures) or a whole minute of kill -9: the mapping changes nothing they check, so they run
// once, under the default mapping.
var notPipeline = []string{
	"TestEveryMapping", "TestClusterKillNodeUnderLoad", "TestClusterJoinAndLeave", "TestClusterSurvivesEtcdMemberDeath",
	"TestAllEtcdDown", "TestDaemonWaitsForEtcd", "TestClusterWaitsForASlowNode", "TestClusterStaticNodesFailover",
	"TestKill9MidMigrationLosesNothing", "TestKill9LosesNoAcknowledgedWrite", "TestFullDiskStillDeletes",
	"TestDaemonEnvironmentOverridesAndBadFlags", "TestStartupFailuresSayWhy", "TestKeyFiles", "TestResultCodesAgree",
	"TestEtcdStoreBatchesAndScans", "TestEtcdWatchAfterCompaction", "TestEtcdOneBadWriteNeverFailsItsGroup",
}

// TestEveryMapping runs the suite's pipeline tests under -threads 1, 2 and 4 (each mapping
// daemon/pipeline.go chooses), but for the one this run already used.
func TestEveryMapping(t *testing.T) {
	if os.Getenv(threadsEnv) != "" {
		t.Skip("this run is itself one mapping of the matrix")
	}
	var cpus unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &cpus))
	ran := pipecached.MappingFor(cpus.Count()).String()
	for _, threads := range []int{1, 2, 4} {
		m := pipecached.MappingFor(threads).String()
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			if m == ran {
				t.Skipf("the suite ran under %s already (this machine's %d CPUs)", m, cpus.Count())
			}
			runSuiteUnder(t, threads)
		})
	}
}

// runSuiteUnder runs this test binary's tests but notPipeline with PIPECACHE_THREADS=threads.
func runSuiteUnder(t *testing.T, threads int) {
	args := []string{"-test.run", ".", "-test.skip", "^(" + strings.Join(notPipeline, "|") + ")$", "-test.count", "1"}
	if deadline, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout", time.Until(deadline).Round(time.Second).String())
	}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", threadsEnv, threads))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || testing.Verbose() {
		t.Logf("%s=%d %s %s:\n%s", threadsEnv, threads, os.Args[0], strings.Join(args, " "), out.String())
	}
	require.NoError(t, err, "the suite failed under -threads %d (%s)", threads, pipecached.MappingFor(threads))
}
