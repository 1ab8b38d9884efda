#!/usr/bin/env bash
# Copies the front-end files shardform embeds from the npm packages pinned in
# web/package-lock.json (installed with `npm ci`) into the Go tree, where
# go:embed takes them. Run after changing a version in web/package.json;
# the api tests check that the copies equal the installed packages.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd web && npm ci --ignore-scripts --no-audit --no-fund)
src=web/node_modules/swagger-ui-dist
for f in swagger-ui-bundle.js swagger-ui.css LICENSE; do
  cp "$src/$f" "api/docsui/$f"
done
htmx=web/node_modules/htmx.org
cp "$htmx/dist/htmx.min.js" dashboard/assets/htmx.min.js
cp "$htmx/LICENSE" dashboard/htmx.LICENSE
echo "copied htmx.org $(node -p "require('./$htmx/package.json').version") into dashboard/assets"
echo "copied swagger-ui-dist $(node -p "require('./$src/package.json').version") into api/docsui"
