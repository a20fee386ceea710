package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// genVersion keys the dump cache: bump it whenever the generated data
// changes.
const genVersion = 2

// dbName is the generated database (and the one the dump recreates).
const dbName = "shop"

// Rows per scale unit. One unit is about 90 MB on disk; the scale for a
// size is calibrated on each generation.
const (
	customersPerUnit = 10_000
	productsPerUnit  = 400
	ordersPerUnit    = 40_000 // order_items: 1 to 5 lines per order, 3 on average; payments: 1 per order
	eventsPerUnit    = 200_000
)

// dataset is a generated dump and what is known about it. It is stored
// beside the dump in the cache as <name>.json.
type dataset struct {
	Version   int         `json:"version"`
	SizeGiB   float64     `json:"size_gib"` // asked for
	Scale     float64     `json:"scale"`
	DBBytes   int64       `json:"db_bytes"` // pg_database_size when generated
	DumpBytes int64       `json:"dump_bytes"`
	Tables    []tableInfo `json:"tables"`
	// CheckSQL is the one query every method is timed to: a point lookup
	// by primary key in the largest table and a count of a small one.
	// Expected is its answer on the generated data.
	CheckSQL    string    `json:"check_sql"`
	Expected    string    `json:"expected"`
	GenSeconds  float64   `json:"gen_seconds"`
	DumpSeconds float64   `json:"dump_seconds"`
	PGVersion   string    `json:"pg_version"`
	CreatedAt   time.Time `json:"created_at"`

	dump string // path of the dump file
	tag  string // size tag for names: "1g", "0p1g"
}

type tableInfo struct {
	Name  string `json:"name"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"` // with indexes and TOAST
}

// sizeTag names a size in file, sandbox and snapshot names: 1 → "1g",
// 0.25 → "0p25g".
func sizeTag(gib float64) string {
	return strings.ReplaceAll(strconv.FormatFloat(gib, 'f', -1, 64), ".", "p") + "g"
}

// loadOrGenerate returns the cached dataset of this size, generating and
// dumping it first when it is not cached (or regen is set).
func loadOrGenerate(ctx context.Context, work, cache string, gib float64, regen bool) (*dataset, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(cache, fmt.Sprintf("%s-v%d-%s", dbName, genVersion, sizeTag(gib)))
	if !regen {
		if b, err := os.ReadFile(base + ".json"); err == nil {
			var ds dataset
			if err := json.Unmarshal(b, &ds); err == nil {
				if st, err := os.Stat(base + ".dump"); err == nil && st.Size() == ds.DumpBytes {
					ds.dump, ds.tag = base+".dump", sizeTag(gib)
					log.Printf("%s: cached dump %s (%s; database %s, generated in %.0f s)", ds.tag, ds.dump, gibStr(ds.DumpBytes), gibStr(ds.DBBytes), ds.GenSeconds)
					return &ds, nil
				}
			}
		}
	}
	_ = os.Remove(base + ".json")
	ds, err := generate(ctx, work, gib, base+".dump")
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(ds, "", "  ")
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return ds, nil
}

// genSettings make a throwaway cluster fast to fill: no durability, and
// wal_level=minimal so that tables created and filled in one transaction
// skip the WAL.
var genSettings = []string{
	"fsync=off", "synchronous_commit=off", "full_page_writes=off",
	"wal_level=minimal", "max_wal_senders=0", "max_wal_size=16GB", "checkpoint_timeout=1h",
	"shared_buffers=1GB", "maintenance_work_mem=1GB", "work_mem=256MB",
	"autovacuum=off", "max_parallel_maintenance_workers=0", "logging_collector=off",
}

// generate fills a database of about gib GiB in a throwaway cluster and
// dumps it with pg_dump -Fc to dumpPath.
func generate(ctx context.Context, work string, gib float64, dumpPath string) (*dataset, error) {
	tag := sizeTag(gib)
	start := time.Now()
	c, err := initCluster(filepath.Join(work, "gen-"+tag))
	if err != nil {
		return nil, err
	}
	defer c.remove()
	if err := c.start(genSettings); err != nil {
		return nil, err
	}
	admin, err := c.waitConnect(ctx, "postgres", time.Minute)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	dbSize := func(db string) int64 {
		var n int64
		if err := admin.QueryRow(ctx, "SELECT pg_database_size($1)", db).Scan(&n); err != nil {
			harness.Fatalf("size of %s: %v", db, err)
		}
		return n
	}

	// Calibrate: fill two small databases; the size grows linearly with
	// the scale above a fixed part (catalogs, partly filled pages).
	for _, q := range []string{"CREATE DATABASE calib_a", "CREATE DATABASE calib_b", "CREATE DATABASE " + dbName} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return nil, err
		}
	}
	const calibA, calibB = 0.5, 1.5
	for _, cal := range []struct {
		db    string
		scale float64
	}{{"calib_a", calibA}, {"calib_b", calibB}} {
		if _, err := fill(ctx, c, cal.db, cal.scale); err != nil {
			return nil, fmt.Errorf("calibration: %w", err)
		}
	}
	sizeA, sizeB := dbSize("calib_a"), dbSize("calib_b")
	perUnit := float64(sizeB-sizeA) / (calibB - calibA)
	fixed := float64(sizeA) - calibA*perUnit
	for _, q := range []string{"DROP DATABASE calib_a", "DROP DATABASE calib_b"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return nil, err
		}
	}
	target := int64(gib * (1 << 30))
	scale := math.Max(0.01, math.Round((float64(target)-fixed)/perUnit*100)/100)
	log.Printf("%s: calibrated %.1f MB per scale unit above %.1f MB in %.1f s; generating scale %.2f (target %s) in %s", tag, perUnit/1e6, fixed/1e6, time.Since(start).Seconds(), scale, gibStr(target), c.dir)

	ds := &dataset{Version: genVersion, SizeGiB: gib, Scale: scale, PGVersion: pgVersion(), CreatedAt: time.Now().UTC(), dump: dumpPath, tag: tag}
	if ds.Tables, err = fill(ctx, c, dbName, scale); err != nil {
		return nil, err
	}
	ds.DBBytes = dbSize(dbName)
	ds.CheckSQL = checkSQL(scale)
	conn, err := pgx.Connect(ctx, c.dsn(dbName))
	if err != nil {
		return nil, err
	}
	err = conn.QueryRow(ctx, ds.CheckSQL).Scan(&ds.Expected)
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("check query on the generated data: %w", err)
	}
	ds.GenSeconds = time.Since(start).Seconds()
	log.Printf("%s: generated %s (target %s) in %.0f s:", tag, gibStr(ds.DBBytes), gibStr(target), ds.GenSeconds)
	for _, t := range ds.Tables {
		log.Printf("    %-12s %12d rows  %s", t.Name, t.Rows, gibStr(t.Bytes))
	}

	dumpStart := time.Now()
	tmp := dumpPath + ".tmp"
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, "pg_dump"), "-Fc", "-f", tmp, dbName)
	cmd.Env = c.libpqEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("pg_dump: %v: %s", err, out)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dumpPath); err != nil {
		return nil, err
	}
	st, err := os.Stat(dumpPath)
	if err != nil {
		return nil, err
	}
	ds.DumpBytes = st.Size()
	ds.DumpSeconds = time.Since(dumpStart).Seconds()
	log.Printf("%s: pg_dump -Fc: %s in %.0f s → %s", tag, gibStr(ds.DumpBytes), ds.DumpSeconds, dumpPath)
	return ds, nil
}

// counts are the row counts of a scale.
type counts struct{ customers, products, orders, events int64 }

func countsOf(scale float64) counts {
	n := func(perUnit float64, least int64) int64 { return max(least, int64(math.Round(scale*perUnit))) }
	return counts{n(customersPerUnit, 100), n(productsPerUnit, 50), n(ordersPerUnit, 100), n(eventsPerUnit, 100)}
}

// checkSQL is the check query for a scale: the products count and one
// event, looked up by primary key in the middle of the largest table.
func checkSQL(scale float64) string {
	key := checkKey(scale)
	return fmt.Sprintf("SELECT (SELECT count(*) FROM products) || '|' || e.id || '|' || e.customer_id || '|' || e.kind || '|' || (e.payload->>'session') FROM events e WHERE e.id = %d", key)
}

// checkKey is the events id the check query looks up.
func checkKey(scale float64) int64 { return countsOf(scale).events/2 + 7 }

// h is a deterministic pseudo-random integer in [0, 2^31) from expr.
func h(expr string, seed int) string {
	return fmt.Sprintf("(hashint8extended((%s)::bigint, %d) & 2147483647)", expr, seed)
}

// pick chooses one of words by h(expr, seed).
func pick(words []string, expr string, seed int) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return fmt.Sprintf("(ARRAY[%s])[1 + %s %% %d]", strings.Join(q, ","), h(expr, seed), len(words))
}

// ts is a timestamp in 2021–2024 chosen by h(expr, seed).
func ts(expr string, seed int) string {
	return fmt.Sprintf("(timestamptz '2021-01-01 00:00:00+00' + (%s %% 126144000) * interval '1 second')", h(expr, seed))
}

var (
	domains    = []string{"example.com", "mail.test", "shop.test", "corp.test", "post.test"}
	firstNames = []string{"Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "John", "Sophie", "Tim", "Hedy", "Niklaus", "Katherine", "Donald", "Annie", "Bjarne"}
	lastNames  = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra", "Perlman", "McCarthy", "Wilson", "Berners-Lee", "Lamarr", "Wirth", "Johnson", "Knuth", "Easley", "Stroustrup"}
	countries  = []string{"US", "GB", "DE", "FR", "NL", "SE", "ES", "IT", "PL", "CA", "AU", "JP", "BR", "IN", "MX"}
	adjectives = []string{"Classic", "Compact", "Deluxe", "Ergonomic", "Organic", "Portable", "Rugged", "Smart", "Vintage", "Wireless", "Modern", "Handmade"}
	nouns      = []string{"Backpack", "Chair", "Desk Lamp", "Headphones", "Kettle", "Keyboard", "Mug", "Notebook", "Sneakers", "Speaker", "Tent", "Watch", "Blender", "Jacket"}
	categories = []string{"home", "kitchen", "outdoor", "electronics", "fashion", "office", "sports", "toys"}
	statuses   = []string{"pending", "paid", "shipped", "delivered", "delivered", "delivered", "cancelled", "refunded"}
	currencies = []string{"USD", "EUR", "GBP", "SEK", "JPY"}
	streets    = []string{"Main St", "High St", "Station Rd", "Church Ln", "Park Ave", "Mill Rd", "King St", "Queen St", "Elm St", "Oak Ave"}
	cities     = []string{"Springfield", "Riverside", "Fairview", "Kingston", "Greenville", "Bristol", "Oxford", "Salem", "Madison", "Georgetown"}
	methods    = []string{"card", "card", "card", "paypal", "bank_transfer", "gift_card"}
	kinds      = []string{"page_view", "page_view", "page_view", "search", "add_to_cart", "remove_from_cart", "checkout", "login"}
	referrers  = []string{"direct", "search", "newsletter", "social", "partner"}
	devices    = []string{"desktop", "mobile", "tablet"}
)

// step is SQL run on one connection: statements in one transaction when
// tx is set.
type step struct {
	name  string
	stmts []string
	tx    bool
}

// fill creates and fills the schema in db at scale, on two connections
// at once (the machine has two cores): tables, then primary keys, then
// secondary indexes, then foreign keys, then VACUUM ANALYZE.
func fill(ctx context.Context, c *cluster, db string, scale float64) ([]tableInfo, error) {
	n := countsOf(scale)
	nc, np, no, ne := strconv.FormatInt(n.customers, 10), strconv.FormatInt(n.products, 10), strconv.FormatInt(n.orders, 10), strconv.FormatInt(n.events, 10)
	table := func(name, ddl, insert string) step {
		// Created and filled in one transaction: with wal_level=minimal
		// the data skips the WAL.
		return step{name: "table " + name, tx: true, stmts: []string{"CREATE TABLE " + name + " (" + ddl + ")", "INSERT INTO " + name + " " + insert}}
	}
	tables := []step{
		table("events", "id bigint NOT NULL, customer_id bigint NOT NULL, kind text NOT NULL, created_at timestamptz NOT NULL, payload jsonb NOT NULL",
			"SELECT i, 1 + "+h("i", 27)+" % "+nc+", "+pick(kinds, "i", 28)+", "+ts("i", 29)+
				", jsonb_build_object('session', md5('s' || (i / 20)), 'path', '/products/' || (1 + "+h("i", 30)+" % "+np+"), 'referrer', "+pick(referrers, "i", 31)+
				", 'duration_ms', "+h("i", 32)+" % 60000, 'device', "+pick(devices, "i", 33)+", 'variant', CASE WHEN "+h("i", 34)+" % 2 = 0 THEN 'a' ELSE 'b' END)"+
				" FROM generate_series(1, "+ne+") i"),
		table("order_items", "order_id bigint NOT NULL, line smallint NOT NULL, product_id bigint NOT NULL, quantity integer NOT NULL CHECK (quantity > 0), unit_price_cents integer NOT NULL",
			"SELECT o, l, 1 + "+h("o * 8 + l", 22)+" % "+np+", 1 + "+h("o * 8 + l", 23)+" % 4, 199 + "+h("o * 8 + l", 24)+" % 50000"+
				" FROM generate_series(1, "+no+") o CROSS JOIN LATERAL generate_series(1, 1 + "+h("o", 21)+" % 5) l"),
		table("orders", "id bigint NOT NULL, customer_id bigint NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL, total_cents bigint NOT NULL, currency char(3) NOT NULL, shipping_address text NOT NULL",
			"SELECT i, 1 + "+h("i", 13)+" % "+nc+", "+pick(statuses, "i", 15)+", "+ts("i", 14)+", 500 + "+h("i", 16)+" % 200000, "+pick(currencies, "i", 17)+
				", (1 + "+h("i", 18)+" % 999) || ' ' || "+pick(streets, "i", 19)+" || ', ' || "+pick(cities, "i", 20)+
				" FROM generate_series(1, "+no+") i"),
		table("payments", "id bigint NOT NULL, order_id bigint NOT NULL, method text NOT NULL, amount_cents bigint NOT NULL, paid_at timestamptz NOT NULL, provider_ref uuid NOT NULL",
			"SELECT i, i, "+pick(methods, "i", 25)+", 500 + "+h("i", 16)+" % 200000, "+ts("i", 14)+" + ("+h("i", 26)+" % 86400) * interval '1 second', md5('pay' || i)::uuid"+
				" FROM generate_series(1, "+no+") i"),
		table("customers", "id bigint NOT NULL, email text NOT NULL, full_name text NOT NULL, country char(2) NOT NULL, marketing_opt_in boolean NOT NULL, created_at timestamptz NOT NULL",
			"SELECT i, 'customer' || i || '@' || "+pick(domains, "i", 1)+", "+pick(firstNames, "i", 2)+" || ' ' || "+pick(lastNames, "i", 3)+
				", "+pick(countries, "i", 4)+", "+h("i", 5)+" % 3 = 0, "+ts("i", 6)+
				" FROM generate_series(1, "+nc+") i"),
		table("products", "id bigint NOT NULL, sku text NOT NULL, name text NOT NULL, category text NOT NULL, price_cents integer NOT NULL, stock integer NOT NULL, description text NOT NULL, created_at timestamptz NOT NULL",
			"SELECT i, 'SKU-' || lpad(i::text, 8, '0'), "+pick(adjectives, "i", 7)+" || ' ' || "+pick(nouns, "i", 8)+" || ' ' || i, "+pick(categories, "i", 9)+
				", 199 + "+h("i", 10)+" % 50000, "+h("i", 11)+" % 1000, 'A ' || lower("+pick(adjectives, "i", 7)+") || ' ' || lower("+pick(nouns, "i", 8)+") || ' from our ' || "+pick(categories, "i", 9)+" || ' range. Batch ' || md5(i::text), "+ts("i", 12)+
				" FROM generate_series(1, "+np+") i"),
	}
	pk := func(t, cols string, identity bool) step {
		s := step{name: "primary key " + t, stmts: []string{"ALTER TABLE " + t + " ADD PRIMARY KEY (" + cols + ")"}}
		if identity {
			s.stmts = append(s.stmts, "ALTER TABLE "+t+" ALTER id ADD GENERATED BY DEFAULT AS IDENTITY",
				"SELECT setval(pg_get_serial_sequence('"+t+"', 'id'), (SELECT max(id) FROM "+t+"))")
		}
		return s
	}
	keys := []step{pk("events", "id", true), pk("order_items", "order_id, line", false), pk("orders", "id", true), pk("payments", "id", true), pk("customers", "id", true), pk("products", "id", true)}
	idx := func(def string) step { return step{name: def, stmts: []string{def}} }
	indexes := []step{
		idx("CREATE INDEX events_customer_id_created_at_idx ON events (customer_id, created_at)"),
		idx("CREATE INDEX order_items_product_id_idx ON order_items (product_id)"),
		idx("CREATE INDEX orders_customer_id_idx ON orders (customer_id)"),
		idx("CREATE INDEX orders_created_at_idx ON orders (created_at)"),
		idx("CREATE INDEX payments_order_id_idx ON payments (order_id)"),
		idx("CREATE UNIQUE INDEX customers_email_key ON customers (email)"),
		idx("CREATE INDEX customers_country_idx ON customers (country)"),
		idx("CREATE UNIQUE INDEX products_sku_key ON products (sku)"),
		idx("CREATE INDEX products_category_idx ON products (category)"),
	}
	// Foreign keys one at a time: validating one locks both tables.
	fks := step{name: "foreign keys", stmts: []string{
		"ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers",
		"ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders ON DELETE CASCADE",
		"ALTER TABLE order_items ADD FOREIGN KEY (product_id) REFERENCES products",
		"ALTER TABLE payments ADD FOREIGN KEY (order_id) REFERENCES orders",
		"ALTER TABLE events ADD FOREIGN KEY (customer_id) REFERENCES customers ON DELETE CASCADE",
		"CREATE VIEW order_totals AS SELECT o.id AS order_id, o.customer_id, sum(i.quantity * i.unit_price_cents) AS items_cents FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id",
	}}
	var vacuum []step
	for _, t := range []string{"events", "order_items", "orders", "payments", "customers", "products"} {
		vacuum = append(vacuum, step{name: "vacuum " + t, stmts: []string{"VACUUM (ANALYZE) " + t}})
	}

	conns := make([]*pgx.Conn, 2)
	for i := range conns {
		conn, err := pgx.Connect(ctx, c.dsn(db))
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.Background())
		conns[i] = conn
	}
	for _, phase := range [][]step{tables, keys, indexes, {fks}, vacuum} {
		if err := runSteps(ctx, conns, phase); err != nil {
			return nil, fmt.Errorf("fill %s: %w", db, err)
		}
	}
	rows, err := conns[0].Query(ctx, `SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid)
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 3 DESC`)
	if err != nil {
		return nil, err
	}
	var out []tableInfo
	for rows.Next() {
		var t tableInfo
		if err := rows.Scan(&t.Name, &t.Rows, &t.Bytes); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// runSteps runs steps on the connections, each step on the next free one,
// in order.
func runSteps(ctx context.Context, conns []*pgx.Conn, steps []step) error {
	work := make(chan step)
	errs := make(chan error, len(conns))
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := runStep(ctx, conn, s); err != nil {
					errs <- fmt.Errorf("%s: %w", s.name, err)
					for range work {
					}
					return
				}
			}
		}()
	}
	for _, s := range steps {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func runStep(ctx context.Context, conn *pgx.Conn, s step) error {
	if s.tx {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		for _, q := range s.stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	}
	for _, q := range s.stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func gibStr(b int64) string {
	switch {
	case b >= 1<<29:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
