import { defineConfig } from "vite";

// The browser guest page, served by confer-signal at /join/<room> with its files under
// /guest/ (embedded in the server binary at build time). Nothing is fetched from elsewhere.
export default defineConfig({
  root: "guest",
  base: "/guest/",
  build: { target: "es2022", outDir: "../dist-guest", emptyOutDir: true, assetsInlineLimit: 0 },
});
