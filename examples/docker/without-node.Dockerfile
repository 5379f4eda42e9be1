# syntax=docker/dockerfile:1
# The porthole agent in an image without Node.js: a build stage lends its node binary, which
# is all the one-file agent needs. The build context must hold porthole-agent.mjs (from
# `pnpm build`: packages/agent/dist/porthole-agent.mjs).
#
# The image needs /bin/sh (porthole's browser stand-ins are shell scripts), and a C library
# that suits the node binary: node:20-bookworm-slim's needs glibc and libstdc++, as Debian and
# Ubuntu images have them; for an Alpine image, take the binary from node:20-alpine instead.
FROM node:20-bookworm-slim AS node

# Your image, for example the Azure CLI on Debian:
FROM python:3.12-slim-bookworm
RUN pip install --no-cache-dir azure-cli

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY porthole-agent.mjs /usr/local/lib/porthole-agent.mjs
ENTRYPOINT ["node", "/usr/local/lib/porthole-agent.mjs", "run", "--"]
CMD ["bash"]
