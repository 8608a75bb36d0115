# stack.sh: sourced by run-test and tests/remote/pusher/run; finds node_modules and the running stack.
# Needs: $srcdir (absolute) and the current directory = the top build directory.

# sockudo_node_modules SUBDIR: sets NODE_MODULES to a node_modules directory that
# holds the dependencies of $srcdir/SUBDIR/package.json.  Uses the source tree's
# own node_modules when present; otherwise installs into $PWD/tests/node[/NAME]
# (the source tree may be read-only, as under make distcheck).
sockudo_node_modules() {
	local sub=$1 dest
	if [ -d "$srcdir/$sub/node_modules" ]; then
		NODE_MODULES=$srcdir/$sub/node_modules
		return 0
	fi
	case $sub in
	tests/integration) dest=$PWD/tests/node ;;
	*) dest=$PWD/tests/node-$(echo "$sub" | tr / -) ;;
	esac
	mkdir -p "$dest"
	(
		# make -j runs several tests at once: one installer at a time.
		flock 9
		if [ ! -f "$dest/.installed" ] ||
		    ! cmp -s "$srcdir/$sub/package-lock.json" "$dest/package-lock.json"; then
			cp "$srcdir/$sub/package.json" "$srcdir/$sub/package-lock.json" "$dest/" &&
			chmod u+w "$dest/package.json" "$dest/package-lock.json" &&
			echo "# npm ci --prefix $dest" >&2 &&
			npm ci --prefix "$dest" --no-audit --no-fund >&2 &&
			touch "$dest/.installed"
		fi
	) 9>"$dest/.lock" || return 1
	NODE_MODULES=$dest/node_modules
}

# sockudo_stack: exports the stack's environment (run/env).  Order:
# $SOCKUDO_ENV if set; else ./run/env when that stack answers `devstack status`;
# else `devstack up` with the binary and run dir of this build directory.
sockudo_stack() {
	local devstack=$srcdir/deploy/devstack
	if [ -n "${SOCKUDO_ENV:-}" ]; then
		set -a; . "$SOCKUDO_ENV"; set +a
		return 0
	fi
	mkdir -p "$PWD/run"
	(
		flock 8
		if [ -f "$PWD/run/env" ] &&
		    (set -a; . "$PWD/run/env"; set +a; "${SOCKUDO_DEVSTACK:-$devstack}" status) >/dev/null 2>&1; then
			exit 0
		fi
		echo "# starting the stack: $devstack up" >&2
		SOCKUDO_BIN=${SOCKUDO_BIN:-$PWD/sockudo-fcgi} SOCKUDO_RUN_DIR=$PWD/run \
		    "$devstack" up >&2
	) 8>"$PWD/run/.integration.lock" || return 1
	[ -f "$PWD/run/env" ] || { echo "run/env missing after devstack up" >&2; return 1; }
	set -a; . "$PWD/run/env"; set +a
	: "${SOCKUDO_DEVSTACK:=$devstack}"
	export SOCKUDO_DEVSTACK
}
