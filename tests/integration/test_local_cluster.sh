# `make run`'s script on the real example: MLP 784-256-10 on Fashion-MNIST,
# 3 epochs, BSP, M=2, N=2 reaches test accuracy >= 0.85, prints it as its
# last line, and leaves no process behind; interrupted, it stops everything.
. tests/integration/lib.sh
export TMPDIR="$T_DIR"
daemons_running() { pgrep -f -- "--port-file $T_DIR/pando-cluster" >/dev/null; }
no_daemons() { ! daemons_running; }
sh tools/local-cluster.sh examples/fashion-mlp.yaml >"$T_DIR/run.out" 2>"$T_DIR/run.err"
rc=$?
last=$(tail -n 1 "$T_DIR/run.out")
echo "# $last"
t_check "the run succeeded (exit $rc)" [ $rc -eq 0 ]
t_check "the last line is the test accuracy" sh -c "echo '$last' | grep -Eq '^test accuracy: 0\.[0-9]{4}$'"
acc=${last#test accuracy: }
t_check "test accuracy $acc >= 0.85" /usr/bin/python3 -c "import sys; sys.exit(not float('$acc') >= 0.85)"
t_check "every epoch was reported" [ "$(grep -c '^epoch [0-9]*: train loss' "$T_DIR/run.out")" = 3 ]
t_check "no daemon is left running" no_daemons

sh tools/local-cluster.sh examples/fashion-mlp.yaml >"$T_DIR/int.out" 2>"$T_DIR/int.err" &
script=$!
i=0
while ! grep -q "^epoch 1/3\|^epoch 1: " "$T_DIR/int.out" "$T_DIR/int.err" 2>/dev/null && [ $i -lt 300 ]; do
  sleep 0.1; i=$((i + 1))
done
t_check "the cluster was running before the stop" daemons_running
kill -TERM $script
wait $script
rc=$?
sleep 0.2
t_check "stopped mid-job, the script exits non-zero ($rc)" [ $rc -ne 0 ]
t_check "stopped mid-job, no daemon is left running" no_daemons
t_done
