package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brokerdev/broker/bench/load"
	"github.com/brokerdev/broker/provider/cloudinary"
)

// The raw-INSERT ceiling runs in a process of its own, started on the
// server core like the broker, so that it gets the CPU the broker gets
// while the load generator's core stays out of it.
const rawInsertCommand = "rawinsert"

// sqlRawInsert stores the row the broker stores for one save, and nothing
// else: no row-level security settings, no conflict handling, no lookup.
const sqlRawInsert = `INSERT INTO files (id, provider, provider_id, url, resource_type, user_id,
	bytes, format, mime_type, width, height, original_filename, created_at)
	VALUES ($1, 'cloudinary', $2, $3, 'image', $4, 12345, 'png', 'image/png', 640, 480, 'cat', $5)`

// rawResult is what the child reports on stdout.
type rawResult struct {
	load.Result
	CPU time.Duration `json:"cpu_ns"` // CPU the client process used over the run
}

func rawInsertMain(args []string) error {
	fs := flag.NewFlagSet(rawInsertCommand, flag.ContinueOnError)
	dbURL := fs.String("url", "", "database URL, with pool_max_conns")
	conc := fs.Int("c", 1, "concurrent workers")
	duration := fs.Duration("duration", 5*time.Second, "measured time")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before")
	nonce := fs.String("nonce", "raw", "makes public IDs unique across runs")
	delivery := fs.String("delivery", "", "CLOUDINARY_DELIVERY_URL, to build the same URL the broker stores")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	defer pool.Close()
	client := &cloudinary.Client{CloudName: cloudName, DeliveryURL: *delivery}
	do := func(ctx context.Context, id int, seq uint64) error {
		rowID, err := uuid.NewV7()
		if err != nil {
			return err
		}
		pid := publicID(*nonce, id, seq)
		_, err = pool.Exec(ctx, sqlRawInsert, rowID.String(), pid,
			client.DeliveryURLFor("image", assetVersion, pid, "png"), benchUser(id),
			time.Now().UTC().Truncate(time.Microsecond))
		return err
	}
	cpu0 := selfCPU()
	res, err := load.Run(ctx, load.Config{Concurrency: *conc, Warmup: *warmup, Duration: *duration}, load.Func(do))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rawResult{Result: res, CPU: selfCPU() - cpu0})
}
