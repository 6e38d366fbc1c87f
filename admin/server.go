package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipecache/pipecache/buildinfo"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport/wire"
)

// Daemon is what the admin endpoint reads: *daemon.Daemon. Every method must be safe for
// concurrent use.
type Daemon interface {
	Snapshot() Snapshot
	Ready() error
	SlowLog(ctx context.Context) ([]wire.SlowRequest, error)
}

// Config configures the admin endpoint.
type Config struct {
	Addr   string         // TCP address to listen on, host:port (port 0: any free port)
	Build  buildinfo.Info // reported as pipecache_build_info
	Logger *slog.Logger   // default: discard
}

// Server is the admin HTTP endpoint. It listens from Listen on; SetDaemon connects it to the
// daemon once that has started, so that /healthz answers while the daemon still waits for its
// store. All its methods are safe for concurrent use.
type Server struct {
	log    *slog.Logger
	ln     net.Listener
	srv    *http.Server
	store  *storeMetrics
	exec   *execMetrics
	daemon atomic.Pointer[Daemon]
	served chan error // Serve's result

	stopOnce sync.Once
	stopErr  error
}

// ErrServer is returned when the admin endpoint cannot listen or stops with an error.
var ErrServer = errors.New("admin")

// Listen binds cfg.Addr and serves the admin endpoint on it until Shutdown.
func Listen(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServer, err)
	}
	s := &Server{log: cfg.Logger, ln: ln, store: newStoreMetrics(), exec: newExecMetrics(), served: make(chan error, 1)}
	reg, err := s.registry(cfg.Build)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%w: %w", ErrServer, err)
	}
	s.srv = &http.Server{
		Handler:           s.routes(reg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// registry gathers every metric the endpoint serves: the daemon's counters (read at scrape
// time), the store's latency histograms, the build, and the Go runtime's and process's own.
func (s *Server) registry(build buildinfo.Info) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipecache_build_info", Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": build.Version, "revision": build.Revision,
			"vcs_time": build.Time, "modified": strconv.FormatBool(build.Modified),
			"goversion": build.GoVersion, "build": build.String()},
	})
	info.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipecache_ready", Help: "1 while /readyz answers 200, else 0."},
		func() float64 {
			if s.ready() != nil {
				return 0
			}
			return 1
		})
	cs := []prometheus.Collector{newCollector(s.snapshot), info, ready,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	cs = append(cs, s.exec.seconds)
	for _, c := range append(cs, s.store.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

func (s *Server) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn), Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /slowlog", s.slowlog)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "pipecached admin endpoint: "+Paths+"\n")
	})
	return mux
}

// readyz answers 200 once the daemon serves current data, 503 with the reason otherwise.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.ready(); err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	io.WriteString(w, "ready\n")
}

// Paths lists what the endpoint serves, for its index page and the daemon's start-up line.
const Paths = "/metrics /healthz /readyz /slowlog /debug/pprof/"

// slowlog answers the daemon's slow log as a JSON array, newest first (the slowlog op's
// value: PROTOCOL.md, "The slow log"); 503 while the daemon starts.
func (s *Server) slowlog(w http.ResponseWriter, r *http.Request) {
	d := s.daemon.Load()
	if d == nil {
		http.Error(w, "not ready: "+errStarting.Error(), http.StatusServiceUnavailable)
		return
	}
	log, err := (*d).SlowLog(r.Context())
	if err != nil {
		http.Error(w, "slow log: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if log == nil {
		log = []wire.SlowRequest{}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		s.log.Debug("writing /slowlog", "err", err)
	}
}

// errStarting is /readyz's answer before SetDaemon.
var errStarting = errors.New("starting")

func (s *Server) ready() error {
	d := s.daemon.Load()
	if d == nil {
		return errStarting
	}
	return (*d).Ready()
}

func (s *Server) snapshot() (Snapshot, bool) {
	d := s.daemon.Load()
	if d == nil {
		return Snapshot{}, false
	}
	return (*d).Snapshot(), true
}

// Addr returns the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// StoreObserver returns what measures the store's loads and commits: give it to the daemon
// (stages.OutgoingConfig.Observer) before starting it.
func (s *Server) StoreObserver() stages.StoreObserver { return s.store }

// ExecObserver returns what measures processor calls: give it to the daemon
// (stages.CacheConfig.ExecObserver) for the histogram pipecache_exec_duration_seconds.
func (s *Server) ExecObserver() stages.ExecObserver { return s.exec }

// SetDaemon connects the endpoint to the running daemon: from now on /metrics reports its
// counters and /readyz its readiness.
func (s *Server) SetDaemon(d Daemon) { s.daemon.Store(&d) }

// Shutdown stops listening and waits for requests in progress to finish, until ctx is done
// (a running CPU profile or trace is cut short then). Calling it again returns the first
// call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = errors.Join(err, s.srv.Close())
	}
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("%w: shutdown: %w", ErrServer, err)
	}
	return nil
}
