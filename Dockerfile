# syntax=docker/dockerfile:1
# Multi-stage build: dependencies cached by cargo-chef, queries checked offline from .sqlx/; the dashboard
# built by Node in its own stage (npm ci from package-lock.json, vite build) and served from /app/dashboard.

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM node:20-bookworm-slim AS dashboard
WORKDIR /dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ENV SQLX_OFFLINE=true
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin vendor-server

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app vendor
WORKDIR /app
COPY --from=builder /app/target/release/vendor-server /usr/local/bin/vendor-server
COPY config ./config
COPY --from=dashboard /dashboard/dist ./dashboard
USER vendor
ENV PORT=3001 HOST=0.0.0.0 LOG_FORMAT=json OFFERS_FILE=/app/config/offers.toml DASHBOARD_DIR=/app/dashboard
EXPOSE 3001
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["vendor-server", "healthcheck", "http://127.0.0.1:3001/health"]
ENTRYPOINT ["vendor-server"]
CMD ["serve"]
