#!/bin/sh
# The layer check of libpando (run by `make test`, or `sh tests/check_layers.sh`).
#
# libpando's folders are layers, lowest first:
#
#   base < job < data < ml < net
#
#   base  util, error, log, config: no other layer
#   job   spec, schedule, plan: what a job is and how it is planned
#   data  fileio and the readers; pd_dataset_load() takes a job spec, so
#         data sits above job
#   ml    model, plugin, layers, optimizer: models of a job's data
#   net   rpc, wire, psclient, session, metrics, daemon, and the phase
#         counters and trace rings that fill protocol messages (ml and net are
#         independent today; net is put last because it is what the daemons
#         are made of)
#
# A file may include headers of its own layer and of lower ones only. The
# layer of a public header common/include/pando/X.h is the folder of its X.c
# (a public header without one fails the check until it is given one); the
# generated protocol headers belong to net; other libraries' headers
# (a path with a folder, e.g. oneapi/dnnl/dnnl.h) are not checked. A private
# header (a bare name) must be in the including file's own folder. Prints "ok - ..." or
# "FAIL - ..." lines like the unit tests.
cd "$(dirname "$0")/.." || exit 2
LAYERS="base job data ml net"

rank() { # rank LAYER -> its position, lowest 1
  i=1
  for l in $LAYERS; do
    [ "$l" = "$1" ] && { echo $i; return; }
    i=$((i + 1))
  done
  echo 0
}

# layer_of_public NAME (e.g. dataset.h) -> layer, or "" when unknown
layer_of_public() {
  base=${1%.h}
  for l in $LAYERS; do
    [ -f "common/src/$l/$base.c" ] && { echo "$l"; return; }
  done
  echo ""
}

failed=0
checked=0
problems=$(mktemp)
for file in common/src/*/*.c common/src/*/*.h common/include/pando/*.h; do
  case $file in
    common/include/pando/*)
      own=$(layer_of_public "$(basename "$file")")
      if [ -z "$own" ]; then
        echo "$file: no common/src/<layer>/$(basename "${file%.h}").c says its layer" >>"$problems"
        continue
      fi ;;
    *) own=$(basename "$(dirname "$file")") ;;
  esac
  own_rank=$(rank "$own")
  if [ "$own_rank" -eq 0 ]; then
    echo "$file: folder $own is not a layer ($LAYERS)" >>"$problems"
    continue
  fi
  checked=$((checked + 1))
  grep -o '^#include "[^"]*"' "$file" | sed 's/^#include "\(.*\)"$/\1/' | while read -r inc; do
    case $inc in
      pando.pb-c.h | grpc/*) layer=net ;;
      pando/*)
        layer=$(layer_of_public "${inc#pando/}")
        if [ -z "$layer" ]; then
          echo "$file includes $inc, a header of no layer" >>"$problems"
          continue
        fi ;;
      */*) continue ;; # another library's header (oneapi/dnnl/dnnl.h)
      *)
        dir=$(dirname "$file")
        if [ ! -f "$dir/$inc" ]; then
          echo "$file includes $inc, a private header of another folder" >>"$problems"
        fi
        continue ;;
    esac
    if [ "$(rank "$layer")" -gt "$own_rank" ]; then
      echo "$file ($own) includes $inc ($layer): a lower layer includes an upper one" >>"$problems"
    fi
  done
done
if [ -s "$problems" ]; then
  sed 's/^/  /' "$problems"
  echo "FAIL - check_layers: libpando's layers ($LAYERS) are crossed"
  failed=1
else
  echo "ok - check_layers: $checked files of libpando include only their own and lower layers ($LAYERS)"
fi
rm -f "$problems"
exit $failed
