package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/progress"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/pages"
	"github.com/ckpt/ckpt/lib/stream"
)

// dumper writes the pages records of each task.
type dumper struct {
	hdr   *image.Header
	out   *stream.Writer
	pages *pages.Dumper
	log   io.Writer // nil unless -v
	meter *progress.Meter
	total pages.Stats
	tasks int
}

// dumpTask dumps the pages of the task whose record is rec.
func (d *dumper) dumpTask(rec stream.Record) error {
	var t image.Task
	if err := rec.Decode(&t); err != nil {
		return err
	}
	if t.Zombie {
		return nil // it has no memory left
	}
	if err := checkHeld(d.hdr, t.PID); err != nil {
		return err
	}
	start := time.Now()
	st, err := d.pages.Dump(t.PID, t.StartTime, t.Vmas, d.write)
	if err != nil {
		return err
	}
	if err := checkHeld(d.hdr, t.PID); err != nil {
		return err
	}

	d.tasks++
	d.total.Pages += st.Pages
	d.total.Bytes += st.Bytes
	d.total.Zero += st.Zero
	d.total.Records += st.Records
	if d.log != nil {
		fmt.Fprintf(d.log, "ckpt-mem: pid %d: %d pages, %.1f MiB (%d zero pages left out) "+
			"in %d records, %v, %v\n", t.PID, st.Pages, mib(st.Bytes), st.Zero, st.Records,
			time.Since(start).Round(time.Microsecond), st.Method)
	}
	return nil
}

// write writes one run as a pages record.
func (d *dumper) write(r *pages.Run) error {
	body, err := r.Body()
	if err != nil {
		return err
	}
	d.meter.Add(int64(len(r.Data)))
	return d.out.WriteRecord(stream.Record{Kind: image.KindPages, Body: body})
}

// summary says, with -v, what was dumped in all.
func (d *dumper) summary(took time.Duration) {
	if d.log == nil {
		return
	}
	fmt.Fprintf(d.log, "ckpt-mem: %d tasks: %d pages, %.1f MiB (%d zero pages left out) "+
		"in %d records, %v\n", d.tasks, d.total.Pages, mib(d.total.Bytes), d.total.Zero,
		d.total.Records, took.Round(time.Microsecond))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
