# syntax=docker/dockerfile:1
# modeld: OpenAI-compatible local inference server.
#   docker build -t modeld .
#   docker run -p 1337:1337 -v modeld-models:/models modeld

# ---- build: dependencies and an OpenMP build of llama.cpp from node-llama-cpp's bundled source
# Portable x86-64 build (AVX2/FMA/F16C) instead of -march=native: an image may run on another
# CPU than the one that built it. node-llama-cpp names the build folder after these options, so
# the runtime stage must see the same variables to find the build.
ARG LLAMA_CMAKE_NATIVE=OFF
FROM node:20-bookworm AS build
ARG LLAMA_CMAKE_NATIVE
ENV NODE_LLAMA_CPP_CMAKE_OPTION_GGML_NATIVE=${LLAMA_CMAKE_NATIVE} \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_AVX2=ON \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_FMA=ON \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_F16C=ON
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake ninja-build g++ make git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY scripts ./scripts
# OpenMP build from the llama.cpp source inside node-llama-cpp (offline): ~2x faster CPU decoding
# than the prebuilt binaries (docs/llama-build.md). Keep only what the runtime loads.
RUN npm run build:llama \
 && cd node_modules/node-llama-cpp/llama \
 && rm -rf llama.cpp \
 && find localBuilds -mindepth 2 -maxdepth 2 ! -name Release ! -name buildDone.status -exec rm -rf {} +
COPY . .
RUN npm prune --omit=dev

# ---- runtime: slim Node 20, non-root, models as a volume
FROM node:20-bookworm-slim AS runtime
ARG LLAMA_CMAKE_NATIVE
ENV NODE_LLAMA_CPP_CMAKE_OPTION_GGML_NATIVE=${LLAMA_CMAKE_NATIVE} \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_AVX2=ON \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_FMA=ON \
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_F16C=ON
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    MODELD_HOST=0.0.0.0 \
    MODELD_PORT=1337 \
    MODELD_MODELS_DIR=/models
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/bin ./bin
COPY --from=build --chown=node:node /app/src ./src
# The default model objects (no binaries) seed a new named volume.
COPY --from=build --chown=node:node /app/models /models
USER node
VOLUME ["/models"]
EXPOSE 1337
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.MODELD_PORT||1337)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Binds 0.0.0.0 inside the container only (MODELD_HOST); the default elsewhere is 127.0.0.1.
CMD ["node", "bin/modeld.cjs", "serve"]
