#!/bin/sh
# Measure ckpt-mem: the peak RSS check on a 512 MiB process, then the
# benchmarks on a process of CKPT_BENCH_MIB MiB (1024 by default) of
# dirtied anonymous memory, half random and half a repeating pattern.
# Needs root and gcc. COUNT runs of each benchmark (default 5); the
# machine's other load shows in the spread, so compare the best runs.
set -e
cd "$(dirname "$0")/../.."
go test -count=1 -v -run TestPeakRSS ./bench/mem
go test -count=1 -run '^$' -bench . -benchtime "${COUNT:-5}x" ./bench/mem
