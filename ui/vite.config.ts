import { defineConfig } from "vitest/config";

// The app loads the built page from disk through Tauri: relative asset paths, no dev server
// needed, nothing fetched from the network.
export default defineConfig({
  base: "./",
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0 },
  test: { environment: "jsdom" },
});
