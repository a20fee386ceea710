package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// followStore calls changed for every sandbox another replica created,
// changed (spec or status) or deleted since the last look, every interval
// (default 1s). The first look only records what is there: the caller
// loaded it at start.
func followStore(ctx context.Context, st store.Store, every time.Duration, changed func(sb *sandbox.Sandbox, gone bool, id string), log *slog.Logger) {
	if every <= 0 {
		every = time.Second
	}
	seen := map[string]*sandbox.Sandbox{}
	first := true
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		sbs, err := st.ListSandboxes(ctx, store.ListOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("follow the store", "err", err)
		} else {
			now := make(map[string]*sandbox.Sandbox, len(sbs))
			for _, sb := range sbs {
				now[sb.ID] = sb
				if old, ok := seen[sb.ID]; !first && (!ok || !old.UpdatedAt.Equal(sb.UpdatedAt)) {
					changed(sb, false, sb.ID)
				}
			}
			for id, old := range seen {
				if _, ok := now[id]; !ok {
					changed(old, true, id)
				}
			}
			seen, first = now, false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
