#!/bin/sh
# Figures of a dump and restore of a tree of 100 processes and of one
# process of 200 threads, each sleeping: the worst of COUNT runs (default
# 3) of time frozen, dump and restore wall time. Needs root and gcc. Run
# it on an idle machine: on two cores another process's load doubles
# every figure.
set -e
cd "$(dirname "$0")/../.."
go test -count=1 -run '^$' -bench . -benchtime "${COUNT:-3}x" ./bench/tree
