# Build: docker build -t shardform .
# The image holds shardform and a pinned Terraform release (checked against
# its published SHA256), runs as an unprivileged user and reports its health.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/shardform ./cmd/shardform

# Terraform, fetched at build time so the container never downloads it.
# Keep TERRAFORM_VERSION equal to terraform.PinnedVersion (a test checks).
FROM debian:bookworm-slim AS terraform
ARG TERRAFORM_VERSION=1.11.4
ARG TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl unzip && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) sum=1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc ;; \
      arm64) sum=a43d1d0da9b9bab214a8305a39db0e40869572594ccf50c416a7756499143633 ;; \
      *) echo "no pinned Terraform checksum for $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    curl -fsSL -o /tmp/terraform.zip "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_${TARGETARCH}.zip"; \
    echo "$sum  /tmp/terraform.zip" | sha256sum -c -; \
    unzip -d /out /tmp/terraform.zip terraform; \
    /out/terraform version

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/shardform --shell /usr/sbin/nologin shardform \
    && install -d -o shardform -g shardform -m 0700 /var/lib/shardform
COPY --from=build /out/shardform /usr/local/bin/shardform
COPY --from=terraform /out/terraform /usr/local/bin/terraform
ENV SHARDFORM_ADDR=0.0.0.0:8080 SHARDFORM_DATA_DIR=/var/lib/shardform SHARDFORM_TERRAFORM_PATH=/usr/local/bin/terraform
USER shardform
WORKDIR /var/lib/shardform
VOLUME /var/lib/shardform
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["shardform", "health"]
ENTRYPOINT ["shardform"]
CMD ["serve"]
