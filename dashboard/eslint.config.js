// ESLint (flat config): JavaScript's and typescript-eslint's recommended rules (without type
// information: `tsc` checks types) and the React hooks rules. `npm run lint`; part of `npm test`.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // api.gen.ts is generated from the OpenAPI document (scripts/gen-api-types).
  { ignores: ['dist/', 'node_modules/', 'src/lib/api.gen.ts'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      // `const { dropped: _, ...rest } = x` is how a field is left out.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.{ts,tsx}', 'test/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    // The rules of hooks. The plugin's v7 preset also has the React Compiler's rules (refs,
    // set-state-in-effect, immutability, ...): not turned on yet, the code predates them.
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
    },
    languageOptions: { globals: globals.browser },
  },
  {
    // End-to-end tests run in Node and hand functions to the page (`page.evaluate`).
    files: ['e2e/**/*.mjs'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
  {
    files: ['scripts/**/*.mjs', '*.config.{js,ts}'],
    languageOptions: { globals: globals.node },
  },
);
