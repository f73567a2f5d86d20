# The example jobs through a real local cluster (M=2 servers, N=2 workers):
# the MLP with Adam reaches test accuracy >= 0.88 within 5 epochs (BSP), the
# LeNet CNN >= 0.90 within 3 epochs (BSP; about 3 minutes, so not on
# sanitizer builds), and sparse logistic regression over 1M synthetic
# features trains (ASP) with a falling loss.
. tests/integration/lib.sh
export TMPDIR="$T_DIR"
run() { # run SPEC OUT: trains through tools/local-cluster.sh (make run's script)
  sh tools/local-cluster.sh "$1" >"$2" 2>"$2.err"
}
epoch_field() { # epoch_field OUT N FIELD: a number from the N-th epoch line
  sed -n "s/^epoch $2: .*$3 \([0-9.]*\).*/\1/p" "$1"
}
ge() { /usr/bin/python3 -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))" "$1" "$2"; }
lt() { /usr/bin/python3 -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$1" "$2"; }

t_check "fashion-mlp-adam succeeded" run examples/fashion-mlp-adam.yaml "$T_DIR/mlp.out"
acc=$(tail -n 1 "$T_DIR/mlp.out" | sed 's/test accuracy: //')
echo "# $(grep -c '^epoch [0-9]*:' "$T_DIR/mlp.out") epochs, final $(tail -n 1 "$T_DIR/mlp.out")"
t_check "MLP 784-256-10 with Adam: test accuracy $acc >= 0.88 after 5 epochs" ge "${acc:-0}" 0.88

if [ -z "${SANITIZE:-}" ]; then
  t_check "fashion-lenet succeeded" run examples/fashion-lenet.yaml "$T_DIR/lenet.out"
  lacc=$(tail -n 1 "$T_DIR/lenet.out" | sed 's/test accuracy: //')
  echo "# $(grep '^epoch' "$T_DIR/lenet.out" | tr '\n' ';')"
  t_check "LeNet CNN: test accuracy $lacc >= 0.90 after 3 epochs" ge "${lacc:-0}" 0.90
else
  echo "# the LeNet example is not run on a SANITIZE=$SANITIZE build (minutes of CNN math)"
fi

t_check "sparse-logreg succeeded" run examples/sparse-logreg.yaml "$T_DIR/sparse.out"
first=$(epoch_field "$T_DIR/sparse.out" 1 "train loss")
last=$(epoch_field "$T_DIR/sparse.out" 3 "train loss")
sacc=$(epoch_field "$T_DIR/sparse.out" 3 "test accuracy")
echo "# sparse logreg: train loss $first -> $last, test accuracy $sacc"
t_check "sparse logistic regression (1,048,576 features): loss falls ($first -> $last)" lt "${last:-9}" "${first:-0}"
t_check "sparse logistic regression generalises: test accuracy $sacc >= 0.65" ge "${sacc:-0}" 0.65
t_done
