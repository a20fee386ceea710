package main

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// apiCounts are the API server's request counters (apiserver_request_total)
// and the time it spent on them (apiserver_request_duration_seconds_sum),
// by "VERB resource[/subresource]".
type apiCounts struct {
	requests map[string]float64
	seconds  map[string]float64
}

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// scrapeAPI reads the API server's /metrics. Errors give empty counts: the
// breakdown is an aid, not a result.
func scrapeAPI(ctx context.Context, cs kubernetes.Interface) apiCounts {
	c := apiCounts{requests: map[string]float64{}, seconds: map[string]float64{}}
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return c
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var into map[string]float64
		switch {
		case strings.HasPrefix(line, "apiserver_request_total{"):
			into = c.requests
		case strings.HasPrefix(line, "apiserver_request_duration_seconds_sum{"):
			into = c.seconds
		default:
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(line[:i], -1) {
			l[m[1]] = m[2]
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		into[key] += v
	}
	return c
}

// apiUse is one operation's API requests per sandbox, by kind of request.
type apiUse struct {
	key      string
	requests float64 // per sandbox
	ms       float64 // API server time per sandbox (sum of request latencies)
}

// apiBetween is b−a per sandbox, largest first; the total comes first
// under the key "all".
func apiBetween(a, b apiCounts, n int) []apiUse {
	var out []apiUse
	total := apiUse{key: "all"}
	for k, v := range b.requests {
		d := (v - a.requests[k]) / float64(n)
		if d <= 0 {
			continue
		}
		ms := (b.seconds[k] - a.seconds[k]) * 1000 / float64(n)
		out = append(out, apiUse{key: k, requests: d, ms: ms})
		total.requests += d
		total.ms += ms
	}
	sort.Slice(out, func(i, j int) bool { return out[i].requests > out[j].requests })
	return append([]apiUse{total}, out...)
}
