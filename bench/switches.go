package bench

import "github.com/prometheus/procfs"

// processSwitches returns the context switches of every thread of process pid so far, voluntary
// (a thread that blocked: epoll_wait, a futex) and not (pre-empted), from
// /proc/PID/task/*/status; -1 if unknown. A thread that exited during a run takes its count
// with it (pipecached's threads live as long as the process).
func processSwitches(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	threads, err := procfs.AllThreads(pid)
	if err != nil {
		return -1
	}
	var n int64
	for _, t := range threads {
		st, err := t.NewStatus()
		if err != nil {
			continue // it exited meanwhile
		}
		n += int64(st.TotalCtxtSwitches())
	}
	return n
}
