import { useApi } from '../auth';
import { useAsync } from '../lib/hooks';
import { SelectField } from './Filters';

/** Agent filter fed by GET /api/agents. */
export function AgentSelect({ value, onChange, allLabel = 'All agents', label = 'Agent' }: { value: string; onChange: (v: string) => void; allLabel?: string; label?: string }) {
  const api = useApi();
  const { data } = useAsync((signal) => api.agents(signal), 'agents');
  const options = (data?.agents ?? []).map((a) => ({ value: a.agentId, label: a.agentId }));
  if (value && !options.some((o) => o.value === value)) options.unshift({ value, label: value });
  return <SelectField label={label} value={value} onChange={onChange} options={options} allLabel={allLabel} />;
}
