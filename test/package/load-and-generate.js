// The page of test/package/bundle-size.test.ts's Rollup measurement: what an app that loads a model and generates imports.
export { loadModel, generate } from 'tinygpt';
