// Runs the shipped state machine definition locally, unchanged: aws-local-stepfunctions
// interprets the ASL, and every Task invokes our real handler binary through a minimal
// Lambda Runtime API served on loopback (the same protocol the Lambda service speaks to
// `lambda_runtime`). Waits are real (the local policy's grace period is seconds); only
// retry pauses are shortened.
//
//   node run.mjs --definition ../janitor.asl.json --bin-dir DIR [--function-env FILE]
//                [--log FILE] [--calls-dir DIR] [--execution NAME] execute '<input json>'
//   node run.mjs --bin-dir DIR [--function-env FILE] invoke <function> '<event json>'
//
// Prints one JSON object: {status, output | error+cause, trace, invocations}.
import { StateMachine } from 'aws-local-stepfunctions';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const RUNTIME = '/2018-06-01/runtime';
const ACCOUNT = '123456789012';
const REGION = process.env.AWS_REGION || 'us-east-1';

function parseArgs(argv) {
  const options = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--')) {
      options[arg.slice(2)] = argv[++i];
    } else {
      options.positional.push(arg);
    }
  }
  return options;
}

/** `${MetricCheckFunctionArn}` names the function `metric-check`, as the crate and binary are named. */
function functionName(substitutionKey) {
  const base = substitutionKey.replace(/FunctionArn$/, '');
  return base.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

function functionArn(name) {
  return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
}

/** One handler binary, started on first use and fed invocations one at a time. */
class LocalFunction {
  constructor(name, binary, env, log, callsDir) {
    Object.assign(this, { name, binary, env, log, callsDir });
    this.queue = [];
    this.waiting = [];
    this.inflight = new Map();
    this.invocations = 0;
    this.peakRssKiB = 0;
  }

  async start() {
    this.server = http.createServer((req, res) => this.route(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.spawnProcess();
  }

  spawnProcess() {
    const env = {
      ...this.env,
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${this.server.address().port}`,
      AWS_LAMBDA_FUNCTION_NAME: this.name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${this.name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: 'local',
    };
    if (this.callsDir) env.JANITOR_CALL_LOG = path.join(this.callsDir, `${this.name}.calls`);
    this.child = spawn(this.binary, [], { env, stdio: ['ignore', this.log, this.log] });
    this.child.on('exit', (code, signal) => {
      this.child = null;
      // As Lambda reports a runtime that died, during init or mid-invocation.
      const error = () => lambdaError('Runtime.ExitError', `${this.name} exited (code ${code}, signal ${signal})`);
      for (const invocation of [...this.inflight.values(), ...this.queue.splice(0)]) invocation.reject(error());
      this.inflight.clear();
      for (const res of this.waiting.splice(0)) res.destroy();
    });
    this.child.on('error', (e) => {
      for (const invocation of this.queue.splice(0)) invocation.reject(lambdaError('Runtime.InvalidEntrypoint', e.message));
    });
  }

  invoke(payload) {
    this.invocations++;
    if (!this.child) this.spawnProcess();
    return new Promise((resolve, reject) => {
      this.queue.push({ id: randomUUID(), body: JSON.stringify(payload), resolve, reject });
      this.pump();
    });
  }

  pump() {
    while (this.waiting.length > 0 && this.queue.length > 0) {
      const res = this.waiting.shift();
      const invocation = this.queue.shift();
      this.inflight.set(invocation.id, invocation);
      res.writeHead(200, {
        'content-type': 'application/json',
        'lambda-runtime-aws-request-id': invocation.id,
        'lambda-runtime-deadline-ms': String(Date.now() + 900_000),
        'lambda-runtime-invoked-function-arn': functionArn(this.name),
        'lambda-runtime-trace-id': `Root=1-${Date.now().toString(16)}-${invocation.id.replaceAll('-', '').slice(0, 24)}`,
      });
      res.end(invocation.body);
    }
  }

  route(req, res) {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const url = req.url || '';
      if (req.method === 'GET' && url === `${RUNTIME}/invocation/next`) {
        this.waiting.push(res);
        this.pump();
        return;
      }
      const match = url.match(/^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/);
      const invocation = match && this.inflight.get(match[1]);
      if (invocation) {
        this.inflight.delete(match[1]);
        if (match[2] === 'response') {
          try {
            invocation.resolve(body.length > 0 ? JSON.parse(body) : null);
          } catch (e) {
            invocation.reject(lambdaError('Runtime.InvalidResponse', `${this.name} answered with invalid JSON: ${e.message}`));
          }
        } else {
          const reported = safeJson(body);
          invocation.reject(lambdaError(reported.errorType || 'Runtime.Unknown', reported.errorMessage || body));
        }
      } else if (url === `${RUNTIME}/init/error`) {
        const reported = safeJson(body);
        for (const queued of this.queue.splice(0)) {
          queued.reject(lambdaError(reported.errorType || 'Runtime.InitError', reported.errorMessage || body));
        }
      }
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"status":"OK"}');
    });
  }

  /** The handler process's peak resident set (Linux VmHWM), read before it is stopped. */
  readPeakRss() {
    if (!this.child) return;
    try {
      const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
      const match = status.match(/^VmHWM:\s+(\d+) kB/m);
      if (match) this.peakRssKiB = Math.max(this.peakRssKiB, Number(match[1]));
    } catch {
      // Not Linux, or the process already exited: no figure.
    }
  }

  async stop() {
    this.readPeakRss();
    for (const res of this.waiting.splice(0)) res.destroy();
    if (this.child) this.child.kill('SIGTERM');
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

/** Step Functions matches a Lambda error by its errorType, which the Error's name carries here. */
function lambdaError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** Calls `visit(name, state)` for every state, the Map's processor and Parallel branches included. */
function walkStates(states, visit) {
  for (const [name, state] of Object.entries(states)) {
    visit(name, state);
    const processor = state.ItemProcessor || state.Iterator;
    if (processor) walkStates(processor.States, visit);
    for (const branch of state.Branches || []) walkStates(branch.States, visit);
  }
}

/** Every Task state with the function its Resource names. */
function taskStates(states) {
  const tasks = [];
  walkStates(states, (name, state) => {
    if (state.Type !== 'Task') return;
    const key = /^\$\{(\w+)\}$/.exec(state.Resource || '');
    if (!key) throw new Error(`Task ${name}: Resource ${state.Resource} is not a \${...FunctionArn} substitution`);
    tasks.push({ state: name, fn: functionName(key[1]), hasRetry: Array.isArray(state.Retry) });
  });
  return tasks;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const [command, ...rest] = options.positional;
  const binDir = options['bin-dir'];
  if (!binDir || !['execute', 'invoke'].includes(command)) {
    throw new Error('usage: run.mjs --bin-dir DIR [--definition FILE] [--function-env FILE] execute INPUT | invoke FUNCTION EVENT');
  }
  const functionEnv = options['function-env'] ? JSON.parse(fs.readFileSync(options['function-env'], 'utf8')) : {};
  const log = options.log ? fs.openSync(options.log, 'a') : 'inherit';
  const functions = new Map();
  // Map items reach a function at once: every caller waits for the same start.
  const starting = new Map();
  const local = async (name) => {
    if (!functions.has(name)) {
      const env = { ...process.env, ...(functionEnv[name] || {}) };
      const fn = new LocalFunction(name, path.join(binDir, name), env, log, options['calls-dir']);
      functions.set(name, fn);
      starting.set(name, fn.start());
    }
    await starting.get(name);
    return functions.get(name);
  };

  try {
    if (command === 'invoke') {
      const [name, event] = rest;
      const fn = await local(name);
      try {
        const output = await fn.invoke(JSON.parse(event));
        return { status: 'SUCCEEDED', output };
      } catch (e) {
        return { status: 'FAILED', error: e.name, cause: e.message };
      }
    }

    const text = fs.readFileSync(options.definition, 'utf8');
    const raw = JSON.parse(text);
    const tasks = taskStates(raw.States);
    // DefinitionSubstitutions, as CloudFormation applies them: each function's ARN.
    const definition = JSON.parse(
      text.replace(/\$\{(\w+FunctionArn)\}/g, (_, key) => functionArn(functionName(key))),
    );
    const taskResourceLocalHandlers = {};
    const retryIntervalOverrides = {};
    // The largest state input or output any Task saw: Step Functions refuses over 256 KiB.
    let largestPayload = 0;
    const measure = (value) => {
      largestPayload = Math.max(largestPayload, Buffer.byteLength(JSON.stringify(value ?? null)));
      return value;
    };
    for (const { state, fn, hasRetry } of tasks) {
      taskResourceLocalHandlers[state] = async (input) => measure(await (await local(fn)).invoke(measure(input)));
      if (hasRetry) retryIntervalOverrides[state] = 20;
    }
    const machine = new StateMachine(definition);
    const execution = machine.run(JSON.parse(rest[0] || '{}'), {
      overrides: { taskResourceLocalHandlers, retryIntervalOverrides },
      context: {
        Execution: {
          Name: options.execution || randomUUID(),
          StartTime: new Date().toISOString(),
        },
      },
    });
    const trace = [];
    const collecting = (async () => {
      for await (const event of execution.eventLogs) {
        if (event.type === 'StateEntered' || event.type === 'StateRetried' || event.type === 'StateCaught') {
          const entry = { state: event.state.name, event: event.type };
          if (event.index !== undefined) entry.item = event.index;
          if (event.type !== 'StateEntered') entry.error = event.Error ?? event.retry?.Error ?? event.catch?.Error;
          trace.push(entry);
        }
      }
    })();
    let result;
    try {
      result = { status: 'SUCCEEDED', output: await execution.result };
    } catch (e) {
      // An ExecutionError wraps what failed the execution (a Fail state's Error and Cause).
      const failure = e.cause instanceof Error ? e.cause : e;
      result = { status: 'FAILED', error: failure.name, cause: failure.message };
    }
    await collecting.catch(() => {});
    const invocations = Object.fromEntries([...functions].map(([name, fn]) => [name, fn.invocations]));
    const peak_rss_kib = Object.fromEntries(
      [...functions].map(([name, fn]) => {
        fn.readPeakRss();
        return [name, fn.peakRssKiB];
      }),
    );
    return { ...result, trace, invocations, peak_rss_kib, largest_payload_bytes: largestPayload };
  } finally {
    await Promise.all([...functions.values()].map((fn) => fn.stop()));
  }
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (e) => {
    process.stderr.write(`local pipeline: ${e.stack || e}\n`);
    process.exit(1);
  },
);
