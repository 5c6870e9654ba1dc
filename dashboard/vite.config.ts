import { defineConfig } from 'vitest/config';

// No framework plugin: Vite's built-in transform handles TSX with the automatic JSX runtime.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` proxies the API to a local `lightning serve` (default port 4000).
    proxy: {
      '/api': process.env.LIGHTNING_URL ?? 'http://127.0.0.1:4000',
      '/health': process.env.LIGHTNING_URL ?? 'http://127.0.0.1:4000',
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.{ts,tsx}'],
    setupFiles: ['test/setup.ts'],
    restoreMocks: true,
  },
});
