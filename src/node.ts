/**
 * Node-only additions: files on disk. Everything in the main entry is re-exported, so Node code can
 * import from 'tinygpt/node' alone.
 */
export * from './index.js';
export { writeFileAtomic, saveModelFile, loadModelFile } from './io/node-files.js';
export { plotHistorySVG, type HistoryPlotOptions } from './plot/history-svg.js';
export { historyFromBytes } from './plot/history-file.js';
export { loadHuggingFaceFolder, saveHuggingFaceFolder } from './io/huggingface-node.js';
