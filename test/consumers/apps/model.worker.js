// The app's own model worker: tinygpt/worker serves createModelWorker's and loadModelWorker's calls here.
import { serveModelWorker } from 'tinygpt/worker';

void serveModelWorker();
