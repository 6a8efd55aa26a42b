#!/bin/sh
# Stands in for the Node tests when the build could not make the addon:
# skipped (77) on a developer machine, failed under CI=true.
echo "*** SKIPPED: the Node.js binding was not built: $1" >&2
if [ "${CI:-}" = "true" ]; then
  echo "*** CI=true: a missing component fails the suite instead of skipping" >&2
  exit 1
fi
exit 77
