# The CLI's address and an admin token (scripts/run): made once in ROOT/.klaxon/cli.yaml (only its
# hash goes into the database, as KLAXON_BOOTSTRAP_TOKEN), and copied to HOME's
# ~/.config/klaxon/cli.yaml unless that exists, so `klaxon` works from any folder. Both mode 600.
# Prints the token.
klaxon_write_cli_config() {
  local root=$1 home=${2:-}
  mkdir -p "$root/.klaxon"
  if [ ! -s "$root/.klaxon/cli.yaml" ]; then
    local token="klx_$(head -c 96 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 43)"
    (umask 077; printf 'address: 127.0.0.1:7402\ntoken: %s\n' "$token" > "$root/.klaxon/cli.yaml")
    echo "==> admin token for the CLI written to .klaxon/cli.yaml" >&2
  fi
  if [ -n "$home" ] && [ ! -e "$home/.config/klaxon/cli.yaml" ] && mkdir -p "$home/.config/klaxon" 2>/dev/null; then
    (umask 077; cp "$root/.klaxon/cli.yaml" "$home/.config/klaxon/cli.yaml") \
      && echo "==> the CLI's address and token also written to $home/.config/klaxon/cli.yaml (mode 600)" >&2
  fi
  sed -n 's/^token: //p' "$root/.klaxon/cli.yaml"
}
