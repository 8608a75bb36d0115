#!/bin/bash
# store.sh: runs tests/integration/t_store (TAP) against the devstack's MariaDB.
# Usage: store.sh   (from the top build directory, as `make check` runs it)
# The stack is found or started exactly as run-test does (stack.sh); t_store
# reads the database settings from the stack's config file, $SOCKUDO_CONF.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "${srcdir:-$here/../..}" && pwd)
export srcdir
top_builddir=$(cd "${top_builddir:-.}" && pwd)

t_store=$top_builddir/tests/integration/t_store
if [ ! -x "$t_store" ]; then
	echo "Bail out! $t_store is not built (make tests/integration/t_store)"
	exit 1
fi

. "$srcdir/tests/integration/stack.sh"

if ! sockudo_stack; then
	echo "Bail out! the sockudo-fcgi stack is not running and devstack up failed"
	exit 1
fi
if [ -z "${SOCKUDO_CONF:-}" ] || [ ! -r "$SOCKUDO_CONF" ]; then
	echo "Bail out! the stack's environment names no readable SOCKUDO_CONF"
	exit 1
fi
export SOCKUDO_CONF

exec "$t_store" "$@"
