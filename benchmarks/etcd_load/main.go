// etcd_load: a closed-loop Put load against an etcd cluster, the same shape as `raftctl bench`.
//
// It finds the leader among -endpoints (Status on each), opens -connections clients to it, and
// keeps -in-flight Puts of a 16-byte value outstanding at every moment (each answer sends the
// next Put at once; worker w writes key "bench/<w>"). After -warmup unmeasured seconds it
// measures a window of -duration seconds: the answers that arrive in it, whenever their Put was
// sent, each with its latency from send to answer. Then it stops issuing and waits for the
// outstanding Puts (each bounded by -timeout). "errors" counts every Put that failed, in the
// warm-up and the drain too (etcd refuses load it cannot apply in time: "too many requests").
// It prints one JSON object on stdout:
//
//	{"endpoint", "leader", "in_flight", "connections", "seconds", "acknowledged", "errors",
//	 "error_samples", "warmup_acknowledged", "latencies_us"}
//
// and benchmarks/etcd_peer.py turns that into raftctl bench's report. Built by that module in
// GOPATH mode against Debian's golang-etcd-server-dev sources (GO111MODULE=off), offline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type options struct {
	endpoints   []string
	inFlight    int
	connections int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	wait        time.Duration
}

type result struct {
	Endpoint     string   `json:"endpoint"`
	Leader       string   `json:"leader"`
	InFlight     int      `json:"in_flight"`
	Connections  int      `json:"connections"`
	Seconds      float64  `json:"seconds"`
	Acknowledged int      `json:"acknowledged"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples"`
	WarmupAcked  int      `json:"warmup_acknowledged"`
	LatenciesUS  []int64  `json:"latencies_us"`
}

// tally is one worker's count: it is merged after every worker has stopped.
type tally struct {
	acked, warmupAcked, errors int
	samples                    []string
	latencies                  []int64
}

func parseOptions() options {
	endpoints := flag.String("endpoints", "", "comma-separated client URLs of the cluster's members")
	inFlight := flag.Int("in-flight", 1, "Puts outstanding at every moment")
	connections := flag.Int("connections", 0, "client connections to the leader (default min(in-flight, 4))")
	duration := flag.Float64("duration", 2, "measured seconds")
	warmup := flag.Float64("warmup", 0.5, "unmeasured seconds first")
	timeout := flag.Float64("timeout", 10, "seconds a Put may take before it counts as an error")
	wait := flag.Float64("wait", 30, "seconds to wait for a leader that accepts a Put")
	flag.Parse()
	if *endpoints == "" || *inFlight < 1 || *duration <= 0 || *warmup < 0 || *connections < 0 {
		fmt.Fprintln(os.Stderr, "etcd_load: give -endpoints, and -in-flight >= 1, -duration > 0, -warmup >= 0")
		os.Exit(2)
	}
	conns := *connections
	if conns == 0 {
		conns = 4
	}
	if conns > *inFlight {
		conns = *inFlight
	}
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return options{strings.Split(*endpoints, ","), *inFlight, conns, seconds(*duration), seconds(*warmup),
		seconds(*timeout), seconds(*wait)}
}

// findLeader asks every endpoint for its status until one names a leader whose endpoint answers,
// and a Put through it succeeds (the cluster is ready), or until wait runs out.
func findLeader(opts options) (endpoint string, leader string, err error) {
	deadline := time.Now().Add(opts.wait)
	for time.Now().Before(deadline) {
		endpoint, leader, err = tryLeader(opts)
		if err == nil {
			return endpoint, leader, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", "", fmt.Errorf("no leader that accepts a Put within %v: %v", opts.wait, err)
}

func tryLeader(opts options) (string, string, error) {
	client, err := clientv3.New(clientv3.Config{Endpoints: opts.endpoints, DialTimeout: time.Second})
	if err != nil {
		return "", "", err
	}
	defer client.Close()
	for _, endpoint := range opts.endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		status, err := client.Status(ctx, endpoint)
		cancel()
		if err != nil || status.Leader == 0 || status.Header.MemberId != status.Leader {
			continue
		}
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		_, err = client.Put(ctx, "bench/ready", "ready")
		cancel()
		if err != nil {
			return "", "", err
		}
		return endpoint, fmt.Sprintf("%x", status.Leader), nil
	}
	return "", "", errors.New("no member is the leader yet")
}

// work keeps one Put outstanding until stop, recording the answers that arrive in [from, to).
func work(client *clientv3.Client, opts options, worker int, from, to time.Time, stop <-chan struct{}, out *tally) {
	key := fmt.Sprintf("bench/%d", worker)
	value := "0123456789abcdef" // 16 bytes
	for {
		select {
		case <-stop:
			return
		default:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
		_, err := client.Put(ctx, key, value)
		cancel()
		done := time.Now()
		switch {
		case err != nil:
			out.errors++
			if len(out.samples) < 3 {
				out.samples = append(out.samples, err.Error())
			}
		case done.Before(from):
			out.warmupAcked++
		case done.Before(to):
			out.acked++
			out.latencies = append(out.latencies, done.Sub(sent).Microseconds())
		}
	}
}

func run(opts options) (result, error) {
	endpoint, leader, err := findLeader(opts)
	if err != nil {
		return result{}, err
	}
	clients := make([]*clientv3.Client, opts.connections)
	for i := range clients {
		clients[i], err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			return result{}, err
		}
		defer clients[i].Close()
	}
	from := time.Now().Add(opts.warmup)
	to := from.Add(opts.duration)
	stop := make(chan struct{})
	tallies := make([]tally, opts.inFlight)
	var wg sync.WaitGroup
	for w := 0; w < opts.inFlight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			work(clients[w%len(clients)], opts, w, from, to, stop, &tallies[w])
		}(w)
	}
	time.Sleep(time.Until(to))
	close(stop)
	wg.Wait()
	res := result{Endpoint: endpoint, Leader: leader, InFlight: opts.inFlight, Connections: opts.connections,
		Seconds: opts.duration.Seconds(), ErrorSamples: []string{}, LatenciesUS: []int64{}}
	for _, t := range tallies {
		res.Acknowledged += t.acked
		res.WarmupAcked += t.warmupAcked
		res.Errors += t.errors
		res.LatenciesUS = append(res.LatenciesUS, t.latencies...)
		for _, s := range t.samples {
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
	}
	return res, nil
}

func main() {
	opts := parseOptions()
	res, err := run(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd_load:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "etcd_load:", err)
		os.Exit(1)
	}
}
