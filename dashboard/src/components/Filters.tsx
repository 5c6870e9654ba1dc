import { useId, type ReactNode } from 'react';
import { RANGES } from '../lib/timeRange';

export function Field({ label, children, id }: { label: string; children: (id: string) => ReactNode; id?: string }) {
  const generated = useId();
  const fieldId = id ?? generated;
  return (
    <div className="field">
      <label htmlFor={fieldId}>{label}</label>
      {children(fieldId)}
    </div>
  );
}

export function SelectField({
  label,
  value,
  onChange,
  options,
  allLabel,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: { value: string; label: string }[];
  allLabel?: string;
}) {
  return (
    <Field label={label}>
      {(id) => (
        <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
          {allLabel !== undefined && <option value="">{allLabel}</option>}
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

export function RangeField({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  return <SelectField label="Time range" value={value || 'all'} onChange={onChange} options={RANGES.map((r) => ({ value: r.value, label: r.label }))} />;
}
