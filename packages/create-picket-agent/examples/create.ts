import { CreateError, createAgentProject } from 'create-picket-agent';

// The same as `npm create picket-agent ./rate-guard`, from a script.
try {
  const project = createAgentProject({ directory: './rate-guard' });
  console.log(`wrote ${project.files.length} files for ${project.name}`);
} catch (err) {
  // a non-empty directory (without `force: true`) or an invalid package name
  if (err instanceof CreateError) console.error(err.message);
  else throw err;
}
