// Lint rules for the whole tree. TypeScript is linted with type information (typescript-eslint's
// type-checked presets over tsconfig.json); plain JavaScript (examples, bench, browser harnesses)
// with the JavaScript rules only. Formatting belongs to Prettier, not to these rules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  // test/consumers/apps/*.ts: a consumer's program, type-checked by test/consumers against the packed package
  { ignores: ['dist/', 'build/', 'node_modules/', 'assembly/', 'runs/', 'bench/results/', '**/*.d.ts', 'test/consumers/apps/*.ts'] },
  js.configs.recommended,
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node, ...globals.browser, ...globals.worker } },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node, ...globals.browser },
    },
    rules: {
      // Public methods are async by contract even when one backend has nothing to await: a throw then
      // becomes a rejection for every caller, the same on every backend.
      '@typescript-eslint/require-await': 'off',
      // It calls casts unnecessary that tsc needs (a spread into a kernel, a literal union member).
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests poke at untyped data on purpose (parsed safetensors headers, forged files, JSON answers
    // from servers); the checks on `any` would only add casts there.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
