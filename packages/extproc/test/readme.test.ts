import { readmeExamplesMatchFiles } from '@picket/compliance';

readmeExamplesMatchFiles(import.meta.url);
