# Serve examples/edge/worker.js with workerd, Cloudflare's open-source Workers runtime:
#
#   npm run build && npm run demo        # builds dist/ and trains runs/names.safetensors
#   npx workerd serve examples/edge/config.capnp
#   curl 'http://127.0.0.1:8787/generate?prompt=Ma&maxNewTokens=12&temperature=0.8&seed=1'
#
# Paths are relative to this file. Module names are what the worker imports: 'tinygpt' is the
# bundle, 'tinygpt/tinygpt.wasm' the kernels as a compiled module (Workers refuse to compile bytes).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .tinygptWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const tinygptWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "tinygpt", esModule = embed "../../dist/index.js"),
    (name = "tinygpt/tinygpt.wasm", wasm = embed "../../dist/tinygpt.wasm"),
  ],
  # the model file's bytes; or drop this and set MODEL_URL with (name = "MODEL_URL", text = "https://...").
  # LoRA adapters for it: (name = "ADAPTERS", json = "{\"moby\": \"ADAPTER_MOBY\"}") and
  # (name = "ADAPTER_MOBY", data = embed "../../runs/moby.lora.safetensors"); see README.md
  bindings = [(name = "MODEL", data = embed "../../runs/names.safetensors")],
  compatibilityDate = "2025-09-01",
);
