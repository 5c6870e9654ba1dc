// A scripted stand-in for the Anthropic Messages API (POST /v1/messages, non-streaming JSON), so
// `lightning optimize` can run for real in the end-to-end tests without a network or a key.
//
// The optimizer sends three kinds of prompts (crates/optimizer/src/templates.rs):
//   - judge:    asks for {"score": …} on one recorded run for a candidate quoted as a JSON
//               string between <candidate-NONCE> markers;
//   - edit:     carries a <critique> and wants the new prompt between <prompt> and </prompt>;
//   - critique: carries <examples> and wants bullet points.
// The script is deterministic: a failed run counts as avoided when the candidate prompt has the
// rule for its failure, the critique names the missing rule for the failure the examples show first, and the
// edit appends the rule the critique names. So a run climbs from the seed to a prompt with both
// rules, one rule per round.
import { createServer } from 'node:http';

/** Failure kinds of the seeded agent, the error text that identifies them, and the rule that fixes them. */
export const OPT_RULES = [
  { error: 'order not found', rule: 'Look up the order before answering.' },
  { error: 'promised a refund', rule: 'Never promise refunds; hand them to a human.' },
];

function between(text, open, close) {
  const a = text.indexOf(open);
  if (a < 0) return '';
  const rest = text.slice(a + open.length);
  const b = rest.indexOf(close);
  return b < 0 ? rest : rest.slice(0, b);
}

/** The scripted reply text for one optimizer prompt, and which kind of prompt it was. */
/** The candidate the judge is shown: the JSON string on the line after its opening marker. */
function quotedCandidate(p) {
  const open = p.indexOf('<candidate-');
  if (open < 0) return '';
  return JSON.parse(p.slice(open).split('\n')[1]);
}

export function scriptedReply(p) {
  const prompt = p.includes('"score"') ? quotedCandidate(p) : between(p, '<prompt>\n', '\n</prompt>');
  if (p.includes('"score"')) {
    let score;
    if (p.includes('Outcome: success')) score = 1;
    else {
      const kind = OPT_RULES.find((r) => p.includes(r.error));
      score = kind && prompt.includes(kind.rule) ? 1 : 0;
    }
    return { kind: 'judge', text: `Verdict: {"score": ${score}, "reason": "scripted judge"}` };
  }
  if (p.includes('<critique>')) {
    const critique = between(p, '<critique>\n', '\n</critique>');
    const named = OPT_RULES.find((r) => critique.includes(r.rule));
    const addition = named ? named.rule : 'Be polite.';
    return { kind: 'edit', text: `Here is the revised prompt:\n<prompt>\n${prompt}\n${addition}\n</prompt>` };
  }
  if (p.includes('<examples>')) {
    const examples = between(p, '<examples>', '</examples>');
    const missing = OPT_RULES.filter((r) => !prompt.includes(r.rule));
    if (missing.length === 0) return { kind: 'critique', text: '- Be more polite.' };
    // The uncovered failure the examples show first (the optimizer starts each slot's minibatch
    // at a different failure type, so sibling branches get different critiques).
    const at = (r) => (examples.includes(r.error) ? examples.indexOf(r.error) : Infinity);
    const pick = [...missing].sort((a, b) => at(a) - at(b))[0];
    const text = `- Add the rule "${pick.rule}": the prompt says nothing about it, and runs failed with "${pick.error}".\n- Keep the {shop} placeholder.`;
    return { kind: 'critique', text };
  }
  return { kind: 'unknown', text: '' };
}

/**
 * Start the fake on a free port of 127.0.0.1. Returns { url, calls, problems, close }: `calls`
 * counts replies by kind, `problems` lists anything the optimizer sent that the script did not
 * expect (wrong path, headers, body, streaming).
 */
export async function startFakeLlm() {
  const calls = { judge: 0, critique: 0, edit: 0 };
  const problems = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const fail = (status, message) => {
        problems.push(`${req.method} ${req.url}: ${message}`);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message } }));
      };
      if (req.method !== 'POST' || req.url !== '/v1/messages') return fail(404, 'unexpected route');
      if (!req.headers['x-api-key']) return fail(401, 'missing x-api-key');
      if (req.headers['anthropic-version'] !== '2023-06-01') return fail(400, `anthropic-version ${req.headers['anthropic-version']}`);
      let msg;
      try {
        msg = JSON.parse(body);
      } catch {
        return fail(400, 'body is not JSON');
      }
      if (msg.stream) return fail(400, 'streaming was not expected');
      const content = msg.messages?.[0]?.content;
      const p = typeof content === 'string' ? content : Array.isArray(content) ? content.map((b) => b.text ?? '').join('') : '';
      const { kind, text } = scriptedReply(p);
      if (kind === 'unknown') return fail(400, `unrecognised prompt: ${p.slice(0, 200)}`);
      calls[kind] += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: `msg_${kind}_${calls[kind]}`,
          type: 'message',
          role: 'assistant',
          model: msg.model ?? 'claude-fake',
          content: [{ type: 'text', text }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: { input_tokens: Math.ceil(p.length / 4), output_tokens: Math.ceil(text.length / 4) },
        }),
      );
    });
  });
  await new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolveListen);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    problems,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
