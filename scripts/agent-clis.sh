#!/usr/bin/env bash
# The real agent CLIs for the end-to-end tests (tests/agents/test_claude_e2e.py): installed
# from the npm registry into .agent-clis/ (ignored by git), once; later runs find them there.
#   bash scripts/agent-clis.sh          Claude Code (the e2e drives it)
#   SWARM_AGENT_CLIS=all bash ...       also Codex and Gemini CLI, when they install (about
#                                       0.6 GB more; `make test` asks for them: their own
#                                       config readers check what `swarm join` writes,
#                                       tests/agents/test_cli_readers.py)
# Without npm it says so and exits 0 (the e2e then skips), unless CI is set: then it fails.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/.agent-clis"
claude_pkg="@anthropic-ai/claude-code"
others=("@openai/codex" "@google/gemini-cli")

if ! command -v npm >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then
    echo "agent-clis: npm is missing and CI is set: install nodejs and npm" >&2
    exit 1
  fi
  echo "agent-clis: npm is missing; the end-to-end tests with the real CLIs will skip" >&2
  exit 0
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "swarm-agent-clis", "private": true}' > "$dir/package.json"

if ! "$dir/node_modules/.bin/claude" --version >/dev/null 2>&1; then
  # --ignore-scripts: no package runs code at install; Claude Code's own postinstall only
  # copies its native binary out of the platform package npm fetched, so it runs by name
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
      "$claude_pkg" || { echo "agent-clis: cannot install $claude_pkg" >&2; exit 1; }
  (cd "$dir/node_modules/$claude_pkg" && node install.cjs) \
      || { echo "agent-clis: cannot set up $claude_pkg" >&2; exit 1; }
fi
[ "${SWARM_AGENT_CLIS:-claude}" = all ] || others=()
for pkg in "${others[@]}"; do
  bin=$(basename "$pkg"); bin=${bin%-cli}
  [ -x "$dir/node_modules/.bin/$bin" ] && continue
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error "$pkg" \
      >/dev/null 2>&1 || echo "agent-clis: $pkg did not install (optional)" >&2
done
"$dir/node_modules/.bin/claude" --version
