#!/bin/sh
# Figures of a whole dump and restore: a process of CKPT_BENCH_MIB MiB
# (1024 by default) of dirtied anonymous memory, half random and half a
# repeating pattern, dumped with --kill and restored, COUNT times (default
# 3); the worst run's time frozen, dump and restore wall time, archive size
# and each stage's peak RSS. Needs root and gcc. Run it on an idle machine:
# on two cores another process's load doubles every figure.
set -e
cd "$(dirname "$0")/../.."
go test -count=1 -v -run TestPeakRSS ./bench/pipeline
go test -count=1 -run '^$' -bench . -benchtime "${COUNT:-3}x" ./bench/pipeline
