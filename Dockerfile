# Build: docker build -t shardform .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/shardform ./cmd/shardform

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/shardform /usr/local/bin/shardform
ENV SHARDFORM_ADDR=0.0.0.0:8080 SHARDFORM_DATA_DIR=/var/lib/shardform
VOLUME /var/lib/shardform
EXPOSE 8080
ENTRYPOINT ["shardform"]
CMD ["serve"]
