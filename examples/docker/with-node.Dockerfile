# syntax=docker/dockerfile:1
# The porthole agent in an image that already has Node.js 20 or later. The last three
# instructions are the whole recipe: add them to your own Dockerfile. The build context must
# hold porthole-agent.mjs, the one-file agent that `pnpm build` writes to
# packages/agent/dist/porthole-agent.mjs (it needs no node_modules).
FROM node:20-bookworm-slim

# Your command-line tools, for example:
RUN npm install --global @anthropic-ai/claude-code @openai/codex @google/gemini-cli

COPY porthole-agent.mjs /usr/local/lib/porthole-agent.mjs
# `run --` starts the tunnel, puts porthole's browser stand-ins in front of the command, and
# exits with the command's status. The command comes from CMD, or from `docker run IMAGE CMD`.
ENTRYPOINT ["node", "/usr/local/lib/porthole-agent.mjs", "run", "--"]
CMD ["bash"]
