package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/pipecache/pipecache/client"
)

// Config is a workload.
type Config struct {
	Server   string        // the driver: pipecache, pipecache-cluster, redis or memcached
	Name     string        // the server's name in the results (default: Server), e.g. redis-aof
	Addr     string        // the server's address
	Token    string        // pipecache auth token
	Sessions int           // connections
	InFlight int           // requests in flight per session (workers = Sessions × InFlight)
	Mix      string        // operation weights, e.g. "get=90,set=10" (ops: get set mget incr cas zincr)
	Keys     int           // key space
	Dist     string        // uniform or zipf
	ZipfS    float64       // Zipf exponent (> 1)
	Value    int           // value size in bytes
	MGetKeys int           // keys per mget
	Members  int           // zincr: members per board (a board is a key: board:0 to board:Keys-1)
	ZIncrCAS bool          // zincr on pipecache by get, decode, change, encode and CAS, not exec
	Duration time.Duration // measured time (0: until Requests)
	Requests int64         // measured requests (0: until Duration)
	Warmup   time.Duration // unmeasured run before measuring
	Preload  bool          // set every key (and counter) before the warm-up, so gets hit
	Prefix   string        // key prefix, so runs do not collide
	PID      int           // the server's process id, to measure its CPU per operation (0: not measured)
	// Subscribers opens this many extra pipecache sessions subscribed to every key of the
	// workload (a prefix subscription), to load the notification path; their pushes are counted.
	Subscribers int
	// NearCache gives each pipecache session a near cache of this many keys (0: none). Set by
	// Open; Run only reports the hits.
	NearCache int
	// Shared: every worker uses one client object (Open's Options.Shared); Run only reports it.
	Shared bool
	// MetricsURL is pipecached's admin /metrics (http://host:port/metrics), read before and
	// after the measured run for the server's datagrams and wake-ups per operation ("": not read).
	MetricsURL string
}

// Result is what a run measured. Latencies are in microseconds.
type Result struct {
	Server    string           `json:"server"`
	Mix       string           `json:"mix"`
	Sessions  int              `json:"sessions"`
	InFlight  int              `json:"in_flight"`
	Keys      int              `json:"keys"`
	Dist      string           `json:"dist"`
	Value     int              `json:"value_bytes"`
	Ops       int64            `json:"ops"`
	Seconds   float64          `json:"seconds"`
	OpsPerSec float64          `json:"ops_per_sec"`
	P50       int64            `json:"p50_us"`
	P90       int64            `json:"p90_us"`
	P99       int64            `json:"p99_us"`
	P999      int64            `json:"p999_us"`
	Max       int64            `json:"max_us"`
	Misses    int64            `json:"misses"`
	Conflicts int64            `json:"cas_conflicts"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Steal     int64            `json:"steal_jiffies"`                  // CPU stolen by the host during the run (/proc/stat)
	ServerCPU float64          `json:"server_cpu_us_per_op,omitempty"` // the server process's CPU time per operation
	// ServerSwitches is the server's context switches per operation, every thread's, voluntary
	// and not (/proc/PID/task/*/status).
	ServerSwitches float64 `json:"server_ctx_switches_per_op,omitempty"`
	Pushes         int64   `json:"pushes,omitempty"`     // change events the subscribers received
	NearCache      int     `json:"near_cache,omitempty"` // near-cache size per session
	NearHits       int64   `json:"near_hits,omitempty"`  // gets the near caches answered
	Shared         bool    `json:"shared,omitempty"`     // one client object shared by every worker

	// The connections: the sessions that connected (the workers of the others did not run), the
	// dials retried and the sessions that never connected, and the sessions lost after they
	// connected, during the preload, warm-up or measured run (and redialled by the SDK: pipecache
	// only).
	SessionsUp   int   `json:"sessions_connected"`
	DialRetries  int64 `json:"dial_retries"`
	DialFailures int64 `json:"dial_failures"`
	SessionsLost int64 `json:"sessions_lost"`

	ClientCPU float64 `json:"client_cpu_us_per_op,omitempty"` // this load generator's own CPU time per operation (getrusage)
	// From pipecached's /metrics (Config.MetricsURL), per operation: UDP datagrams received
	// and sent, and wake-ups of a sleeping stage by another (eventfd writes).
	DatagramsIn  float64  `json:"server_datagrams_in_per_op,omitempty"`
	DatagramsOut float64  `json:"server_datagrams_out_per_op,omitempty"`
	Wakeups      float64  `json:"server_wakeups_per_op,omitempty"`
	Warnings     []string `json:"warnings,omitempty"` // what could not be measured, and why
}

type op uint8

const (
	opGet op = iota
	opSet
	opMGet
	opIncr
	opCAS
	opZIncr
	numOps
)

var opNames = [numOps]string{"get", "set", "mget", "incr", "cas", "zincr"}

// parseMix turns "get=90,set=10" into cumulative weights.
func parseMix(mix string) ([numOps]int, error) {
	var cum [numOps]int
	var w [numOps]int
	for _, part := range strings.Split(mix, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return cum, fmt.Errorf("mix %q: want name=weight pairs", mix)
		}
		i := 0
		for i < int(numOps) && opNames[i] != name {
			i++
		}
		if i == int(numOps) {
			return cum, fmt.Errorf("mix %q: unknown op %q (get, set, mget, incr, cas, zincr)", mix, name)
		}
		w[i] += n
	}
	total := 0
	for i := range w {
		total += w[i]
		cum[i] = total
	}
	if total == 0 {
		return cum, fmt.Errorf("mix %q: all weights zero", mix)
	}
	return cum, nil
}

func (c *Config) validate() error {
	switch {
	case c.Sessions <= 0 || c.InFlight <= 0:
		return errors.New("sessions and in-flight must be positive")
	case c.Keys <= 0 || c.Value < 0:
		return errors.New("keys must be positive and value size non-negative")
	case c.Duration <= 0 && c.Requests <= 0:
		return errors.New("give a duration or a request count")
	case c.Dist != "uniform" && c.Dist != "zipf":
		return fmt.Errorf("distribution %q: uniform or zipf", c.Dist)
	case c.Dist == "zipf" && c.ZipfS <= 1:
		return errors.New("zipf exponent must be > 1")
	}
	if c.MGetKeys <= 0 {
		c.MGetKeys = 10
	}
	if c.Members == 0 {
		c.Members = 100
	}
	mix, err := parseMix(c.Mix)
	if err != nil {
		return err
	}
	return c.checkZIncr(mix)
}

// keyChooser picks keys for one worker.
type keyChooser struct {
	rng  *rand.Rand
	zipf *rand.Zipf
	n    int
}

func newKeyChooser(c *Config, seed int64) *keyChooser {
	k := &keyChooser{rng: rand.New(rand.NewSource(seed)), n: c.Keys}
	if c.Dist == "zipf" {
		k.zipf = rand.NewZipf(k.rng, c.ZipfS, 1, uint64(c.Keys-1))
	}
	return k
}

func (k *keyChooser) next() int {
	if k.zipf != nil {
		return int(k.zipf.Uint64())
	}
	return k.rng.Intn(k.n)
}

// Run executes the workload against d, writing a progress line to progress (may be nil) every
// second, and returns what it measured.
func Run(ctx context.Context, cfg Config, d Driver, progress io.Writer) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	mix, _ := parseMix(cfg.Mix)
	value := make([]byte, cfg.Value)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	if cfg.Preload {
		if err := preload(ctx, cfg, d, value); err != nil {
			return Result{}, fmt.Errorf("preload: %w", err)
		}
	}
	pushes, stopSubs, err := startSubscribers(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer stopSubs()
	if cfg.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		run(wctx, cfg, d, mix, value, 0, nil)
		cancel()
	}
	m := startMeasure(ctx, cfg, d, pushes)
	mctx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Duration > 0 {
		mctx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()
	var done atomic.Int64
	stopProgress := startProgress(progress, &done)
	start := time.Now()
	workers := run(mctx, cfg, d, mix, value, cfg.Requests, &done)
	elapsed := time.Since(start)
	stopProgress()

	res := Result{Server: cmp.Or(cfg.Name, cfg.Server), Mix: cfg.Mix, Sessions: cfg.Sessions, InFlight: cfg.InFlight,
		Keys: cfg.Keys, Dist: cfg.Dist, Value: cfg.Value, Seconds: elapsed.Seconds(), Shared: cfg.Shared,
		Errors: map[string]int64{}}
	h := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	for _, w := range workers {
		h.Merge(w.hist)
		res.Misses += w.misses
		res.Conflicts += w.conflicts
		for k, v := range w.errors {
			res.Errors[k] += v
		}
	}
	res.Ops = h.TotalCount()
	m.finish(ctx, &res)
	res.NearCache = cfg.NearCache
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	res.P50, res.P90, res.P99 = h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(99)
	res.P999, res.Max = h.ValueAtQuantile(99.9), h.Max()
	return res, nil
}

// measure holds the counters read when the measured run starts, to subtract at its end.
type measure struct {
	cfg                   Config
	d                     Driver
	pushes                *atomic.Int64
	nearHits              func() uint64
	steal, serverCPU, cpu int64
	switches              int64 // the server's context switches, -1 if unknown
	pushes0               int64
	near                  uint64
	counters              serverCounters
	countersErr           error
}

func startMeasure(ctx context.Context, cfg Config, d Driver, pushes *atomic.Int64) *measure {
	m := &measure{cfg: cfg, d: d, pushes: pushes, nearHits: func() uint64 { return 0 }}
	if nh, ok := d.(interface{ NearHits() uint64 }); ok {
		m.nearHits = nh.NearHits
	}
	if cfg.MetricsURL != "" {
		m.counters, m.countersErr = scrapeCounters(ctx, cfg.MetricsURL)
	}
	m.steal, m.serverCPU, m.cpu = readSteal(), processCPU(cfg.PID), selfCPU()
	m.switches = processSwitches(cfg.PID)
	m.pushes0, m.near = pushes.Load(), m.nearHits()
	return m
}

// finish fills in what was counted during the measured run, per operation where it says so.
func (m *measure) finish(ctx context.Context, res *Result) {
	cpu, conns := selfCPU(), m.d.Stats()
	res.Steal = readSteal() - m.steal
	res.NearHits = int64(m.nearHits() - m.near)
	res.SessionsUp, res.DialRetries, res.DialFailures = conns.Connected, conns.DialRetries, conns.DialFailures
	res.SessionsLost = conns.Lost
	res.Pushes = m.pushes.Load() - m.pushes0
	if res.Ops == 0 {
		return
	}
	ops := float64(res.Ops)
	res.ClientCPU = float64(cpu-m.cpu) / ops
	if m.cfg.PID > 0 {
		res.ServerCPU = float64(processCPU(m.cfg.PID)-m.serverCPU) / ops
		if n := processSwitches(m.cfg.PID); n >= 0 && m.switches >= 0 {
			res.ServerSwitches = float64(n-m.switches) / ops
		}
	}
	if m.cfg.MetricsURL == "" {
		return
	}
	after, err := scrapeCounters(ctx, m.cfg.MetricsURL)
	if err = cmp.Or(m.countersErr, err); err != nil {
		res.Warnings = append(res.Warnings, "server counters: "+err.Error())
		return
	}
	res.DatagramsIn = (after.in - m.counters.in) / ops
	res.DatagramsOut = (after.out - m.counters.out) / ops
	res.Wakeups = (after.wakeups - m.counters.wakeups) / ops
}

type worker struct {
	hist              *hdrhistogram.Histogram
	misses, conflicts int64
	errors            map[string]int64
}

// run starts Sessions × InFlight workers until ctx ends or limit requests (0: no limit) are done.
// A worker whose session never connected does not run. After a failed request a worker lets
// its connection wait for a lost session to come back (sessionAwaiter), so that an outage
// costs throughput and shows in the errors, not a flood of instant failures.
func run(ctx context.Context, cfg Config, d Driver, mix [numOps]int, value []byte, limit int64, done *atomic.Int64) []*worker {
	n := cfg.Sessions * cfg.InFlight
	workers := make([]*worker, n)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for w := range n {
		wk := &worker{hist: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3), errors: map[string]int64{}}
		workers[w] = wk
		wg.Go(func() {
			conn := d.Conn(w)
			if conn == nil {
				return
			}
			awaiter, _ := conn.(sessionAwaiter)
			keys := newKeyChooser(&cfg, int64(w)+time.Now().UnixNano())
			mkeys := make([]string, cfg.MGetKeys)
			for ctx.Err() == nil {
				if limit > 0 && issued.Add(1) > limit {
					return
				}
				o := pickOp(keys.rng, mix)
				t0 := time.Now()
				err := wk.do(ctx, conn, o, cfg, keys, value, mkeys)
				if ctx.Err() != nil && err != nil {
					return // the run ended under this request: not a server error
				}
				wk.hist.RecordValue(max(1, time.Since(t0).Microseconds()))
				if done != nil {
					done.Add(1)
				}
				if err != nil {
					wk.errors[errorKind(err)]++
					if awaiter != nil {
						awaiter.awaitSession(ctx, err)
					}
				}
			}
		})
	}
	wg.Wait()
	return workers
}

func pickOp(rng *rand.Rand, mix [numOps]int) op {
	r := rng.Intn(mix[numOps-1])
	o := op(0)
	for r >= mix[o] {
		o++
	}
	return o
}

func (w *worker) do(ctx context.Context, c Conn, o op, cfg Config, keys *keyChooser, value []byte, mkeys []string) error {
	key := cfg.Prefix + "key:" + strconv.Itoa(keys.next())
	switch o {
	case opGet:
		hit, err := c.Get(ctx, key)
		if err == nil && !hit {
			w.misses++
		}
		return err
	case opSet:
		return c.Set(ctx, key, value)
	case opMGet:
		for i := range mkeys {
			mkeys[i] = cfg.Prefix + "key:" + strconv.Itoa(keys.next())
		}
		return c.MGet(ctx, mkeys)
	case opIncr:
		return c.Incr(ctx, cfg.Prefix+"counter:"+strconv.Itoa(keys.next()%1000))
	case opZIncr:
		conflicts, err := c.ZIncr(ctx, boardKey(cfg.Prefix, keys.next()), memberName(keys.rng.Intn(cfg.Members)), 1, cfg.ZIncrCAS)
		w.conflicts += conflicts
		return err
	default:
		conflict, err := c.CAS(ctx, key, value)
		if conflict {
			w.conflicts++
		}
		return err
	}
}

// errorKind names an error for the report: pipecache's code, or the error's text.
func errorKind(err error) string {
	var se *client.ServerError
	switch {
	case errors.As(err, &se):
		return se.Code.String()
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, client.ErrUnavailable):
		return "unavailable"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// preloadAttempts bounds the tries of one key's preload: a request can fail while its session
// is lost and redialled (under packet loss), which should not end the run; a server that keeps
// refusing a write should.
const preloadAttempts = 5

// preload sets every key, and a thousand counters to 0, so that the measured run hits.
func preload(ctx context.Context, cfg Config, d Driver, value []byte) error {
	n := cfg.Sessions * cfg.InFlight
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	total := int64(cfg.Keys + 1000)
	for w := range n {
		c := d.Conn(w)
		if c == nil {
			continue
		}
		wg.Go(func() {
			for i := next.Add(1) - 1; i < total && ctx.Err() == nil; i = next.Add(1) - 1 {
				if err := preloadOne(ctx, cfg, c, i, value); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return ctx.Err()
}

// preloadOne sets key i (or, past the keys, a counter), trying up to preloadAttempts times.
func preloadOne(ctx context.Context, cfg Config, c Conn, i int64, value []byte) error {
	awaiter, _ := c.(sessionAwaiter)
	var err error
	for range preloadAttempts {
		if i < int64(cfg.Keys) {
			err = c.Set(ctx, cfg.Prefix+"key:"+strconv.FormatInt(i, 10), value)
		} else {
			err = setCounter(ctx, c, cfg.Prefix+"counter:"+strconv.FormatInt(i-int64(cfg.Keys), 10))
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		if awaiter != nil {
			awaiter.awaitSession(ctx, err)
		}
	}
	return err
}

func setCounter(ctx context.Context, c Conn, key string) error { return c.Set(ctx, key, []byte("0")) }

// startProgress prints ops/s once a second until stopped.
func startProgress(w io.Writer, done *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, start := int64(0), time.Now()
		for {
			select {
			case <-quit:
				fmt.Fprintln(w)
				return
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(w, "\r%6.0fs  %10d ops  %10.0f ops/s   ", time.Since(start).Seconds(), n, float64(n-last))
				last = n
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// readSteal returns the CPU time stolen by the host so far, in jiffies (0 if unknown).
func readSteal() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	v, _ := strconv.ParseInt(f[8], 10, 64)
	return v
}

// selfCPU returns this process's user+system CPU time so far, in microseconds (0 if unknown).
func selfCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Sec*1_000_000 + int64(ru.Utime.Usec) + ru.Stime.Sec*1_000_000 + int64(ru.Stime.Usec)
}

// processCPU returns the user+system CPU time of process pid so far, in microseconds (0 if
// unknown). Clock ticks are 100 per second on Linux.
func processCPU(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), ") ") // the command name may contain spaces
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return (utime + stime) * 10_000
}
